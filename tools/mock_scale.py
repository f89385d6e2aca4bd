"""Pretraining at scale with known truth: a mock catalogue of a million stars, 5 % of them labelled.

    msa mock --out runs/mock_scale/files --n 1000000 --chunk_rows 100000 --label_fraction 0.05 --seed 7
    python tools/mock_scale.py runs/mock_scale

The real APOGEE library has no ages and no parallaxes and only 40,000 stars; the mock has a truth
for every label of every star. Here:
- the store (`OUT/store.h5`) holds every mock star, the ~32 % too faint for XP included
  (`data.keep_without_xp`), with the labels Teff, log g, [Fe/H], [α/M], age and parallax;
  its validation split (20 %, by hash) is the held-out set and is never trained on;
- `pretrain`: the `small` recipe's autoencoder pretrained on the XP, photometry and astrometry of
  every training star (≈ 800,000, labelled or not) for `--pretrain_epochs`;
- `pretrained` and `scratch`: the recipe fine-tuned on the ≈ 5 % of training stars with labels
  (the same network, from the pretraining run and from random weights, same epochs and seed);
- every held-out star (≈ 200,000, labelled or not) is predicted and scored against its *true*
  parameters (not the noisy labels), split into stars with XP, the same stars with XP hidden,
  and the faint stars that have none. Parallax is a label *and* an input: msa always hides a
  label's own input column from the encoder of the row it predicts, so the predicted parallax is
  spectrophotometric; the measured Gaia parallax is scored beside it as the reference.

With `--n_labels 1000,4000 --seeds 0,1`, the same pretraining is then put to the test where it
should pay most: only n training stars keep their labels (`label_efficiency.labelled_store`), and
the pretrained and the scratch network are fine-tuned on them (all n: no calibration stars kept
out) for as many steps as 60 epochs of 1,000 labels (60 to 400 epochs), and scored the same way.

Every step is skipped when its output exists (the script resumes). Writes `OUT/results.csv` (one
row per model, stars and label: n, bias, σ_MAD, 16–84 % coverage), `OUT/label_efficiency.csv`
(the same per number of labels and seed), `OUT/mock_scale.png` and the times in `OUT/times.json`.
"""
import argparse, json, time
from pathlib import Path

import numpy as np
import pandas as pd

from msa.core import LABELS
from msa.demo import demo_config
from msa.evaluate import compute_metrics, metrics_frame, read_predictions, sigma_mad
from msa.learner import fit_run, finetune_learner, pretrain_learner
from msa.predict import predict_store
from msa.store import build_store, open_store

from label_efficiency import LastValidationOnly, labelled_store   # tools/ is the script's folder: on its path

LABELS_MOCK = LABELS + ('age', 'parallax')

def timed(times:dict, name:str, path:Path, fn):
    "Run `fn` unless `path` exists; record its wall time."
    if path.exists(): return
    t0 = time.time(); fn(); times[name] = round(time.time() - t0)
    print(f'{name}: {times[name]} s', flush=True)

def truth_table(files:Path, store:Path)->pd.DataFrame:
    "True parameters of the store's held-out stars, with the measured parallax and whether the star has XP."
    t = pd.read_parquet(files/'truth_mock.parquet').rename(columns={'alpha_fe': 'alpha_m'})
    phot = pd.read_csv(files/'gaia_source_mock.csv', usecols=['source_id', 'parallax', 'parallax_error']).set_index('source_id')
    with open_store(store) as st:
        held = st.h5['source_id'][:][st.split == 1]
        xp = st.columns.index('rp_0')   # the first RP coefficient: NaN for the stars without XP
        has_xp = np.isfinite(st.h5['values'][:, xp][st.split == 1])
    out = t.loc[held, list(LABELS_MOCK) + ['g', 'giant']].copy()
    out['has_xp'] = has_xp
    out['measured_parallax'] = phot.parallax.reindex(held).to_numpy()
    return out

def scores(pred:pd.DataFrame, truth:pd.DataFrame, model:str, stars:str)->list[dict]:
    f = metrics_frame(compute_metrics({model: pred}, truth[list(LABELS_MOCK) + ['g']])).query("by == 'all'")
    return [{'model': model, 'stars': stars, 'label': r['label'], 'n': int(r['n']), 'bias': r['bias'], 'sigma_mad': r['sigma_mad'],
             'coverage': r['coverage_0.16-0.84']} for r in f.to_dict('records')]

def measured_parallax_rows(truth:pd.DataFrame)->list[dict]:
    rows = []
    for stars, sel in (('with XP', truth.has_xp), ('faint, no XP', ~truth.has_xp)):
        r = truth.measured_parallax[sel] - truth.parallax[sel]
        rows.append({'model': 'Gaia parallax (measured)', 'stars': stars, 'label': 'parallax', 'n': int(np.isfinite(r).sum()),
                     'bias': float(np.nanmedian(r)), 'sigma_mad': sigma_mad(r), 'coverage': np.nan})
    return rows

def figure(preds:dict, truth:pd.DataFrame, out:Path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 3, figsize=(11, 7), constrained_layout=True)
    p = preds['pretrained'].set_index('source_id').reindex(truth.index)
    for row, (stars, sel) in enumerate((('with XP', truth.has_xp.to_numpy()), ('faint, no XP', ~truth.has_xp.to_numpy()))):
        plx = (-0.2, 4) if row == 0 else (-0.1, 1.6)   # the faint stars are distant
        for ax, (label, lim, unit) in zip(axes[row], (('teff', (3500, 7500), 'K'), ('age', (0, 13.5), 'Gyr'), ('parallax', plx, 'mas'))):
            x, y = truth[label].to_numpy()[sel], p[f'{label}_p50'].to_numpy()[sel]
            ok = np.isfinite(x) & np.isfinite(y)
            ax.hexbin(x[ok], y[ok], gridsize=60, extent=(*lim, *lim), mincnt=1, bins='log', cmap='viridis')
            ax.plot(lim, lim, 'w--', lw=0.8)
            ax.set(xlim=lim, ylim=lim, xlabel=f'true {label} [{unit}]', ylabel=f'predicted {label} [{unit}]')
            ax.set_title(f'{stars}: σ_MAD {sigma_mad(y[ok] - x[ok]):.3g} {unit} ({ok.sum():,} stars)', fontsize=9)
    if 'measured_parallax' in truth:   # the measured parallax of the faint stars, for comparison
        x, y = truth.parallax.to_numpy()[~truth.has_xp.to_numpy()], truth.measured_parallax.to_numpy()[~truth.has_xp.to_numpy()]
        axes[1, 2].scatter(x[:3000], y[:3000], s=1, c='tab:orange', alpha=0.5, zorder=0, label='measured Gaia parallax (3,000 stars)')
        axes[1, 2].legend(loc='upper left', fontsize=8)
    fig.suptitle('Mock catalogue, held-out stars: the pretrained model fine-tuned on 5 % of labels', fontsize=11)
    fig.savefig(out, dpi=110); plt.close(fig)

def few_labels(a, out:Path, store:Path, cfg, labels, truth:pd.DataFrame):
    "Fine-tune the pretrained and the scratch network on n labelled training stars; append their scores to label_efficiency.csv."
    res = out/'label_efficiency.csv'
    done = set(map(tuple, pd.read_csv(res)[['n_labels', 'seed', 'method']].astype(str).to_numpy())) if res.exists() else set()
    for n in [int(x) for x in a.n_labels.split(',')]:
        epochs = int(np.clip(round(60 * 1000 / n), 60, 400))
        for s in [int(x) for x in a.seeds.split(',')]:
            todo = [m for m in ('pretrained', 'scratch') if (str(n), str(s), m) not in done]
            if not todo: continue
            few = labelled_store(store, out/f'labels_{n}_{s}.h5', n, s)
            c = cfg.with_overrides([f'finetune.seed={s}', f'finetune.epochs={epochs}', 'finetune.calibration_fraction=0'])
            for method in todo:
                t0, run = time.time(), out/'label_runs'/f'{method}_{n}_{s}'
                learn = finetune_learner(few, run, labels, out/'pretrain' if method == 'pretrained' else None, c)
                learn.add_cb(LastValidationOnly()); fit_run(learn, progress=False)
                predict_store(run, few, run/'catalogue.parquet', progress=False)
                pred = read_predictions(run/'catalogue.parquet')
                rows = (scores(pred, truth[truth.has_xp], method, 'with XP') + scores(pred, truth[~truth.has_xp], method, 'faint, no XP'))
                pd.DataFrame([{'n_labels': n, 'seed': s, 'method': method, 'epochs': epochs, 'seconds': round(time.time() - t0), **r}
                              for r in rows]).to_csv(res, mode='a', header=not res.exists(), index=False, float_format='%.5g')
                print(f'{n} labels, seed {s}, {method}: Teff σ_MAD with XP {rows[0]["sigma_mad"]:.1f} K', flush=True)
            few.unlink()   # a copy of the million-star store: 1 GB

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out'); ap.add_argument('--pretrain_epochs', type=int, default=5); ap.add_argument('--finetune_epochs', type=int, default=60)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--n_labels', default='', help='also fine-tune on this many labelled training stars, comma-separated (e.g. 1000,4000)')
    ap.add_argument('--seeds', default='0', help='seeds of the draws of labelled stars (and of fine-tuning) for --n_labels')
    a = ap.parse_args()
    out = Path(a.out); files = out/'files'
    if not (files/'truth_mock.parquet').exists(): raise SystemExit(f'{files} has no mock catalogue: run the msa mock command of the description first')
    times = json.loads((out/'times.json').read_text()) if (out/'times.json').exists() else {}
    cfg = demo_config(data='mock').with_overrides([f'pretrain.epochs={a.pretrain_epochs}', f'finetune.epochs={a.finetune_epochs}',
                                                    f'finetune.seed={a.seed}', 'data.keep_without_xp=true',
                                                    'finetune.calibration_fraction=0'])   # scored: the networks' own intervals
    store = out/'store.h5'
    xp_files = sorted(files.glob('XP_CONTINUOUS_mock_*.csv'))
    timed(times, 'store', store, lambda: build_store(xp_files, store, labels=files/'labels_mock.fits',
                                                      photometry=[files/'gaia_source_mock.csv'], config=cfg.data))
    timed(times, 'pretrain', out/'pretrain'/'model.pth', lambda: fit_run(pretrain_learner(store, out/'pretrain', cfg), progress=False))
    labels = tuple(l for l in LABELS_MOCK if l in open_store(store).label_names)
    for name, pre in (('pretrained', out/'pretrain'), ('scratch', None)):
        def run(name=name, pre=pre):
            learn = finetune_learner(store, out/name, labels, pre, cfg)
            learn.add_cb(LastValidationOnly()); fit_run(learn, progress=False)
        timed(times, f'finetune_{name}', out/name/'model.pth', run)
        for mode, kw in (('all', {}), ('no_xp', dict(no_xp=True))):
            timed(times, f'predict_{name}_{mode}', out/f'{name}_{mode}.parquet',
                  lambda name=name, kw=kw, mode=mode: predict_store(out/name, store, out/f'{name}_{mode}.parquet', progress=False, **kw))
    (out/'times.json').write_text(json.dumps(times, indent=1))
    truth = truth_table(files, store)
    preds = {f'{name}_{mode}': read_predictions(out/f'{name}_{mode}.parquet') for name in ('pretrained', 'scratch') for mode in ('all', 'no_xp')}
    rows = []
    for name in ('pretrained', 'scratch'):
        rows += scores(preds[f'{name}_all'], truth[truth.has_xp], name, 'with XP')
        rows += scores(preds[f'{name}_no_xp'], truth[truth.has_xp], name, 'with XP hidden')
        rows += scores(preds[f'{name}_all'], truth[~truth.has_xp], name, 'faint, no XP')
    rows += measured_parallax_rows(truth)
    if a.n_labels: few_labels(a, out, store, cfg, labels, truth)
    res = pd.DataFrame(rows)
    res.to_csv(out/'results.csv', index=False, float_format='%.5g')
    figure({'pretrained': preds['pretrained_all']}, truth, out/'mock_scale.png')
    print(res.pivot_table(index=['stars', 'model'], columns='label', values='sigma_mad').to_string(float_format=lambda v: f'{v:.4g}'))

if __name__ == '__main__': main()
