"""One accuracy experiment on the development carve of the APOGEE library: never on the held-out stars.

    msa store build apogee --out runs/apogee.h5                     # once (12 s)
    python tools/dev_experiment.py runs/apogee.h5 runs/dev baseline
    python tools/dev_experiment.py runs/apogee.h5 runs/dev xp_mask_30 finetune.mask_ratio_xp=0.3
    python tools/dev_experiment.py runs/apogee.h5 runs/dev phot_only finetune.inputs=no_xp

The held-out stars (the store's validation split, 20 %) are left out altogether. The training stars
are split again by a hash with salt `dev`: 80 % train, 20 % are scored (`OUT/dev.h5`, built once).
The recipe (`msa demo`'s configuration, the `small` preset) is pretrained once on the development
store (`OUT/pretrain`; overrides of `model.*` or `pretrain.*` get a pretraining run of their own)
and each experiment fine-tunes one model from it with the overrides given (`section.key=value`,
YAML values), calibrates its intervals when the recipe keeps calibration stars out, then scores the scored stars four times: with all inputs, with
the XP block hidden (the faint-star mode, `--no_xp`), with 2MASS hidden and with BP hidden. One row per mode is appended to
`OUT/results.csv`: σ_MAD and the 16–84 % coverage of each label, and the wall time.
"""
import argparse, dataclasses, json, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

from msa.demo import demo_config
from msa.evaluate import compute_metrics, metrics_frame, read_predictions, read_truth
from msa.learner import fit_run, finetune_learner, pretrain_learner
from msa.predict import fit_calibration, predict_store
from msa.store import StoreWriter, open_store

def dev_store(store:Path, out:Path)->Path:
    "The training split of `store`, split again by salt 'dev' (20 % scored): the development carve."
    if out.exists(): return out
    with open_store(store) as st, StoreWriter(out, st.schema, st.label_names, val_fraction=0.2, split_salt='dev',
                                               provenance={'carved_from': str(store)}) as w:
        train = np.flatnonzero(st.split == 0)
        for i in range(0, len(train), 65536):
            rows = train[i:i + 65536]
            sid, v, e, y, ye = st.read(slice(rows[0], rows[-1] + 1), ('source_id', 'values', 'errors', 'labels', 'label_errors'))
            keep = rows - rows[0]
            w.append(sid[keep], v[keep], e[keep], y[keep], ye[keep], file=str(store))
    return out

MODES = {'all': {}, 'no_xp': dict(no_xp=True), 'no_2mass': dict(hide=('2mass',)), 'no_bp': dict(hide=('xp_bp', 'bp'))}

def score(run:Path, store:Path, out:Path, mode:str)->dict:
    predict_store(run, store, out, progress=False, **MODES[mode])
    f = metrics_frame(compute_metrics({'m': read_predictions(out)}, read_truth(store))).query("by == 'all'").set_index('label')
    return {**{f'{l}': round(float(f.loc[l, 'sigma_mad']), 5) for l in f.index},
            **{f'cov_{l}': round(float(f.loc[l, 'coverage_0.16-0.84']), 3) for l in f.index}}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('store'); ap.add_argument('out'); ap.add_argument('name'); ap.add_argument('overrides', nargs='*')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    dev = dev_store(Path(a.store), out/'dev.h5')
    cfg = demo_config().with_overrides(a.overrides + [f'finetune.seed={a.seed}'])
    # overrides of the network or of pretraining need their own pretraining run; the others share the recipe's
    own = [o for o in a.overrides if o.startswith(('model.', 'pretrain.'))]
    pre = out/('pretrain' if not own else 'pretrain_' + '_'.join(o.replace('=', '-').replace('.', '-') for o in own))
    if not (pre/'model.json').exists(): fit_run(pretrain_learner(dev, pre, cfg), progress=False)
    t0 = time.time()
    labels = tuple(l for l in cfg.data.labels if l in open_store(dev).label_names)
    fit_run(finetune_learner(dev, out/a.name, labels, pre, cfg), progress=False)
    if cfg.finetune.calibration_fraction: fit_calibration(out/a.name, dev)   # scored as msa predict would: calibrated
    t = time.time() - t0
    rows = [{'name': a.name, 'overrides': ' '.join(a.overrides), 'seed': a.seed, 'mode': mode, 'finetune_s': round(t),
             **score(out/a.name, dev, out/f'{a.name}_{mode}.parquet', mode)} for mode in MODES]
    res = out/'results.csv'
    pd.DataFrame(rows).to_csv(res, mode='a', header=not res.exists(), index=False)
    print(pd.DataFrame(rows).to_string(index=False))

if __name__ == '__main__': main()
