"""Label efficiency on the development carve: pretrained msa against the same network from scratch and a plain MLP.

    python tools/dev_experiment.py runs/apogee.h5 runs/dev baseline     # builds runs/dev/dev.h5 and runs/dev/pretrain
    python tools/label_efficiency.py runs/dev --sizes 250,1000,4000 --seeds 0,1,2

For each size n and seed s, n training stars of the development store keep their labels (drawn
with seed s) and the others lose them (`OUT/labels_<n>_<s>.h5`); the scored stars (the carve's 20 %)
keep theirs. Three models are trained on those n labels (all of them: no calibration stars are
kept out, and the scores are those of the models' own intervals):
- `pretrained`: the recipe fine-tuned from `OUT/pretrain`, pretrained on the XP and photometry of every
  training star of the carve, labelled or not;
- `scratch`: the same network and fine-tuning, from random weights;
- `mlp`: the plain MLP baseline (`msa.baselines.mlp_baseline`).
With few labels an epoch is a few batches, so the epochs grow as the labels shrink: as many steps
as 60 epochs of 1,000 labels, 60 to 400 epochs (msa validates only after the last one), the same
number of epochs for the MLP, and 30 for it at full labels as in `msa demo`. Runs already in the results file are skipped. `--tag` names a variant (`--set` overrides, another `--pretrained` run). One row per run is appended to `OUT/label_efficiency.csv`: σ_MAD and 16–84 % coverage.
"""
import argparse, dataclasses, shutil, time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from fastai.callback.core import Callback, CancelValidException

from msa.baselines import mlp_baseline
from msa.demo import demo_config
from msa.evaluate import compute_metrics, metrics_frame, read_predictions, read_truth
from msa.learner import fit_run, finetune_learner
from msa.predict import predict_store

class LastValidationOnly(Callback):
    "Skip validation but after the last epoch (the scores come from the catalogue, not from fastai's log)."
    def before_validate(self):
        if self.epoch < self.n_epoch - 1: raise CancelValidException()

def labelled_store(dev:Path, out:Path, n:int, seed:int)->Path:
    "A copy of the development store in which only `n` training stars (drawn with `seed`) keep their labels."
    if out.exists(): return out
    shutil.copy(dev, out)
    with h5py.File(out, 'r+') as h:
        y, split = h['labels'][:], h['split'][:]
        train = np.flatnonzero((split == 0) & np.isfinite(y).any(1))
        keep = np.random.default_rng(seed).choice(train, size=min(n, len(train)), replace=False)
        drop = np.setdiff1d(train, keep)
        y[drop] = np.nan; h['labels'][...] = y
        e = h['label_errors'][:]; e[drop] = np.nan; h['label_errors'][...] = e
    return out

def scores(pred:pd.DataFrame, store:Path)->dict:
    f = metrics_frame(compute_metrics({'m': pred}, read_truth(store))).query("by == 'all'").set_index('label')
    return {**{l: round(float(f.loc[l, 'sigma_mad']), 5) for l in f.index},
            **{f'cov_{l}': round(float(f.loc[l, 'coverage_0.16-0.84']), 3) for l in f.index}}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out'); ap.add_argument('--sizes', default='250,1000,4000'); ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--methods', default='pretrained,scratch,mlp')
    ap.add_argument('--pretrained', default=None, help='the pretraining run (default: OUT/pretrain)')
    ap.add_argument('--set', nargs='*', default=[], help='config overrides section.key=value (the network must match the pretraining run)')
    ap.add_argument('--tag', default='', help="appended to the method's name in the results, for a variant (e.g. '+multitask')")
    a = ap.parse_args()
    out = Path(a.out); dev = out/'dev.h5'; cfg = demo_config().with_overrides(['finetune.calibration_fraction=0', *a.set])   # all n labels train the model
    pretrained = Path(a.pretrained) if a.pretrained else out/'pretrain'
    with h5py.File(dev, 'r') as h: n_all = int(((h['split'][:] == 0) & np.isfinite(h['labels'][:]).any(1)).sum())
    res = out/'label_efficiency.csv'
    done = set(map(tuple, pd.read_csv(res)[['n_labels', 'seed', 'method']].astype(str).to_numpy())) if res.exists() else set()
    for n in [int(x) for x in a.sizes.split(',')]:
        epochs = int(np.clip(round(60 * 1000 / min(n, n_all)), 60, 400)) if n < n_all else cfg.finetune.epochs
        for s in [int(x) for x in a.seeds.split(',')]:
            store = labelled_store(dev, out/f'labels_{n}_{s}.h5', n, s)
            for method in a.methods.split(','):
                name = method + a.tag
                if (str(n), str(s), name) in done: continue   # a run recorded already (the script resumes)
                t0 = time.time()
                if method == 'mlp':
                    mlp_epochs = epochs if n < n_all else 30   # as many passes as the msa models (30 at full labels, as in the demo)
                    pred = mlp_baseline(store, cfg.data.labels[:4], epochs=mlp_epochs, seed=s)
                else:
                    c = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, seed=s, epochs=epochs))
                    run = out/'label_runs'/f'{name}_{n}_{s}'
                    learn = finetune_learner(store, run, cfg.data.labels[:4], pretrained if method == 'pretrained' else None, c)
                    learn.add_cb(LastValidationOnly())
                    fit_run(learn, progress=False)
                    predict_store(run, store, run/'dev.parquet', progress=False)
                    pred = read_predictions(run/'dev.parquet')
                row = {'n_labels': n, 'seed': s, 'method': name, 'epochs': mlp_epochs if method == 'mlp' else epochs, 'seconds': round(time.time() - t0), **scores(pred, store)}
                pd.DataFrame([row]).to_csv(res, mode='a', header=not res.exists(), index=False)
                print(row, flush=True)

if __name__ == '__main__': main()
