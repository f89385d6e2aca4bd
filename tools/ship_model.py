"""Package a trained `msa demo` run as the model that ships with msa (`msa predict --model apogee-dr17`).

    msa demo --out runs/demo                  # the recipe on the APOGEE DR17 XP library (about 7 minutes on 2 cores)
    python tools/ship_model.py runs/demo      # copy its fine-tuned ensemble and held-out report into msa/models/

Copies, for each fine-tuned member `runs/demo/finetune/seed_*`, the three run files (`model.pth`
with its weights in float16, `config.yaml`, `model.json`; not the checkpoints) into
`msa/models/<name>/seed_*`, with the paths in `model.json` reduced to file names and the new
weights' SHA-256, fits the interval calibration of the shipped (float16) ensemble on the demo's
calibration stars (`calibration.json`, `msa.predict.fit_calibration`) and its outlier reference on
the demo's training stars (`outliers.npz`, `msa.predict.fit_outliers`), and copies the held-out report (`report.md` without its figures, `metrics.json`) beside
them. Regenerate it whenever the recipe changes; `nbs/14_demo.ipynb`
checks that the shipped model loads and reproduces its reported held-out accuracy.
"""
import argparse, hashlib, json, shutil, sys

import torch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('demo', help='output folder of `msa demo` (holds finetune/seed_*, report/)')
    ap.add_argument('--name', default='apogee-dr17', help='name of the shipped model (default: apogee-dr17)')
    a = ap.parse_args()
    demo, dest = Path(a.demo), ROOT/'msa'/'models'/a.name
    members = sorted((demo/'finetune').glob('seed_*/model.json'))
    if not members: sys.exit(f'{demo}/finetune holds no fine-tuned run (seed_*/model.json): run `msa demo --out {demo}` first')
    if not (demo/'report'/'metrics.json').exists(): sys.exit(f'{demo}/report/metrics.json does not exist: the demo did not finish')
    shutil.rmtree(dest, ignore_errors=True)
    for meta_file in members:
        src, out = meta_file.parent, dest/meta_file.parent.name
        out.mkdir(parents=True)
        shutil.copy(src/'config.yaml', out/'config.yaml')
        meta = json.loads(meta_file.read_text())
        sha = hashlib.sha256((src/'model.pth').read_bytes()).hexdigest()
        if meta.get('weights_sha256', sha) != sha: sys.exit(f'{src}/model.pth differs from the SHA-256 its model.json recorded')
        # float16 halves the package; the network computes in float32 (`load_state_dict` casts), and the
        # shipped model's held-out scores are checked against its report in nbs/14_demo.ipynb
        state = torch.load(src/'model.pth', map_location='cpu', weights_only=True)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, out/'model.pth')
        meta.update(store=meta['store'] and Path(meta['store']).name, pretrained=meta['pretrained'] and Path(meta['pretrained']).name,
                    weights_sha256=hashlib.sha256((out/'model.pth').read_bytes()).hexdigest(), weights_dtype='float16')
        (out/'model.json').write_text(json.dumps(meta, indent=1))
    from msa.predict import fit_calibration, fit_outliers
    # both fitted with the weights as shipped: float16 moves the latents and quantiles a little
    if json.loads(members[0].read_text()).get('calibration_holdout'): fit_calibration(dest, demo/'store.h5')
    fit_outliers(dest, demo/'store.h5')
    shutil.copy(demo/'report'/'metrics.json', dest/'metrics.json')
    report = (demo/'report'/'report.md').read_text()   # the figures stay in the demo folder (and the README): megabytes
    (dest/'report.md').write_text(report.split('\n## Figures')[0].rstrip() + '\n')
    size = sum(p.stat().st_size for p in dest.rglob('*') if p.is_file())
    print(f'{dest.relative_to(ROOT)}: {len(members)} members and the held-out report, {size / 2**20:.1f} MiB')

if __name__ == '__main__': main()
