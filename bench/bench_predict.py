"""Prediction throughput: stars/s end to end, from an msa store to a catalogue file.

Writes a synthetic store (N rows x 122 features: 55+55 XP coefficients, 8 bands, 4 astrometry
columns) with `StoreWriter`, saves an untrained fine-tuning run (random weights: the speed does not
depend on them) for each preset, and times `predict_store` (read, scale, encoder + quantile head,
un-standardise, write) into Parquet, FITS and HDF5. The first (untimed) run warms the page cache.

    python bench/bench_predict.py [--rows 200000] [--paper-rows 20000] [--batch-size 65536] [--formats parquet,fits,h5]
"""
import argparse, dataclasses, os, platform, tempfile, time
from pathlib import Path

import numpy as np
import torch

from msa.core import ColumnSchema, get_config
from msa.model import MaskedStellarAutoencoder, StellarParameterModel
from msa.predict import load_predictor, predict_store
from msa.runs import RunInfo, save_run
from msa.store import LabelScaler, StoreWriter, open_store


def write_store(path, n_rows, chunk=65536, seed=0):
    rng = np.random.default_rng(seed)
    schema = ColumnSchema(labels=())
    v = rng.normal(size=(chunk, schema.n_features)).astype(np.float32)
    with StoreWriter(path, schema, chunk_rows=chunk, val_fraction=0.0) as w:
        for i in range(0, n_rows, chunk):
            m = min(chunk, n_rows - i)
            w.append(np.arange(i, i + m, dtype=np.int64) * 7919 + 1, v[:m], np.abs(v[:m]) * 0.1)


def write_run(run:Path, store_path, preset:str):
    "A fine-tuning run directory with random weights, written by `msa.runs.save_run`."
    cfg = get_config(preset)
    st = open_store(store_path)
    schema = dataclasses.replace(st.schema, labels=cfg.data.labels)
    model = StellarParameterModel(autoencoder=MaskedStellarAutoencoder(schema=schema, config=cfg.model))
    L = len(cfg.data.labels)
    save_run(RunInfo('finetune', cfg, schema, st.scaler, LabelScaler(cfg.data.labels, [0.0] * L, [1.0] * L), run, str(store_path)), model)
    st.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=200_000, help='stars for the small preset')
    ap.add_argument('--paper-rows', type=int, default=20_000, help='stars for the paper preset (34M parameters)')
    ap.add_argument('--batch-size', type=int, default=65536)
    ap.add_argument('--formats', default='parquet,fits,h5')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    ap.add_argument('--dir', default=None, help='where to write the temporary files (default: system temp)')
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  {platform.node()}  {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}'
          + (f' ({torch.cuda.get_device_name()})' if device.type == 'cuda' else ''))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        for preset, n in (('small', args.rows), ('paper', args.paper_rows)):
            write_store(d/f'{preset}.h5', n)
            write_run(d/f'run_{preset}', d/f'{preset}.h5', preset)
            p = load_predictor(d/f'run_{preset}', device)
            predict_store(p, d/f'{preset}.h5', d/'warm.parquet', batch_size=args.batch_size, progress=False)  # warm-up
            for fmt in args.formats.split(','):
                out = d/f'{preset}.{fmt}'
                t = time.perf_counter()
                predict_store(p, d/f'{preset}.h5', out, batch_size=args.batch_size, progress=False)
                if device.type == 'cuda': torch.cuda.synchronize()
                dt = time.perf_counter() - t
                print(f'{preset:>6} preset  {n:>9,d} stars -> {fmt:<8} {n / dt:>12,.0f} stars/s  ({dt:.2f} s, {out.stat().st_size / 2**20:.1f} MiB)')
                out.unlink()


if __name__ == '__main__':
    main()
