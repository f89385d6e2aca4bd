"""The msa Learner against a lean PyTorch loop of the same network, on the CPU, in one run.

For pretraining and for fine-tuning, each with the `small` preset's network, batch size, masking, noise
and loss, it times one epoch of training batches (validation left out on both sides):

  lean   a plain loop: the split held in memory as scaled tensors, one random permutation per epoch,
         a slice per batch, masks (pretraining) and per-element error noise (fine-tuning) drawn per
         batch with torch, the msa loss, `torch.optim.AdamW` (foreach), no schedule, no callbacks
  msa    `pretrain_learner` / `finetune_learner` from the store, `learn.fit(1)` with every callback
         the commands use; timed by a callback between `before_train` and `after_train`

and prints samples/s of both and their ratio (msa / lean; the issue's target: within 15 %, i.e. ≥ 0.85).
`--profile` adds a cProfile of one msa fine-tuning epoch (top functions by cumulative time).

    python bench/bench_learner.py --store runs/demo/store.h5            # an existing store
    python bench/bench_learner.py                                       # builds the APOGEE store first
"""
import argparse, cProfile, io, os, platform, pstats, tempfile, time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback

from msa.callbacks import add_error_noise, column_roles, draw_hidden
from msa.core import get_config
from msa.learner import finetune_learner, pretrain_learner
from msa.losses import QuantileLoss, ReconstructionLoss
from msa.model import MaskedStellarAutoencoder, StellarParameterModel
from msa.store import build_store


class TrainTimer(Callback):
    "Wall time of the training batches of each epoch (no validation)."
    order = 99
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)
    def __init__(self): self.times = []


def msa_epoch(learn)->float:
    "Samples/s of one training epoch of a Learner (`fit(1)`, every callback; validation not timed)."
    timer = TrainTimer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=timer)
    return learn.dls.train.n_rows / timer.times[0]


def lean_loop(learn, task:str):
    "A function that trains one epoch of a lean loop over the same network (fresh weights), batch size, masks, noise and loss, and returns samples/s."
    torch.manual_seed(0)
    dl = learn.dls.train
    dl._batches([0]).__next__()       # loads and scales the split into memory (the loader's own first step)
    x, x_err, *ys = dl._mem
    n, bs = len(x), dl.bs
    cfg, schema = learn.run_info.config, learn.run_info.schema
    ae = MaskedStellarAutoencoder(schema=schema, config=cfg.model)
    model = ae if task == 'pretrain' else StellarParameterModel(autoencoder=ae)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=1e-4, foreach=True)
    roles = {k: torch.as_tensor(v) for k, v in column_roles(schema).items()}
    rec = torch.as_tensor(np.flatnonzero(schema.reconstructed_mask()))
    p, f = cfg.pretrain, cfg.finetune
    rec_loss = ReconstructionLoss(p.loss)
    q_loss = QuantileLoss(cfg.model.quantiles, weight_by_label_errors=f.weight_by_label_errors)
    def epoch()->float:
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for a in range(0, n - bs + 1, bs):
            idx = perm[a:a + bs]
            xb, eb = x[idx], x_err[idx]
            if task == 'pretrain':
                hidden = draw_hidden(bs, roles, p.mask_ratio_xp, p.mask_ratio_features)
                loss = rec_loss(model(xb, hidden), xb[:, rec], eb[:, rec], hidden[:, rec])
            else:
                xn = add_error_noise(xb, eb) if f.noise else xb
                hidden = roles['always'].expand(bs, -1)
                loss = q_loss(model(xn, hidden), ys[0][idx], ys[1][idx])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return (n // bs * bs) / (time.perf_counter() - t0)
    return epoch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--store', help='an msa store with labels (default: build the APOGEE library store in a temporary folder)')
    ap.add_argument('--preset', default='small')
    ap.add_argument('--epochs', type=int, default=3, help='epochs timed per side, alternating lean and msa (the best of each is reported)')
    ap.add_argument('--profile', action='store_true', help='cProfile one msa fine-tuning epoch')
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='msa_bench_learner_'))
    store = a.store or build_store(['apogee'], tmp/'apogee.h5', progress=False) and tmp/'apogee.h5'
    cfg = get_config(a.preset)
    print(f'bench_learner: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
          f'torch {torch.__version__} with {torch.get_num_threads()} threads, preset {a.preset}, store {store}')
    rows = []
    for task in ('pretrain', 'finetune'):
        learn = (pretrain_learner(store, tmp/'pt', cfg) if task == 'pretrain' else finetune_learner(store, tmp/'ft', None, None, cfg))
        bs = learn.dls.train.bs
        lean = lean_loop(learn, task)
        rates = [(lean(), msa_epoch(learn)) for _ in range(a.epochs)]   # alternated, so drifts in machine speed hit both
        l, m = max(r[0] for r in rates), max(r[1] for r in rates)
        rows.append((task, bs, learn.dls.train.n_rows, l, m, m / l))
        if task == 'finetune' and a.profile:
            pr = cProfile.Profile()
            with learn.no_bar(), learn.no_logging(): pr.enable(); learn.fit(1); pr.disable()
            s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats('tottime').print_stats(25); print(s.getvalue())
    print(f'{"task":<10}{"batch":>7}{"rows":>8}{"lean samples/s":>16}{"msa samples/s":>15}{"msa/lean":>10}')
    for t, bs, n, l, m, r in rows: print(f'{t:<10}{bs:>7}{n:>8}{l:>16,.0f}{m:>15,.0f}{r:>10.2f}')


if __name__ == '__main__': main()
