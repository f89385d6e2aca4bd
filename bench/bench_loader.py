"""Loader throughput: rows/s from a store in the page cache into batches.

Writes a synthetic store (N rows x F float32 values + errors) with `StoreWriter` in a temporary
directory, then times `StoreLoader` over the training split in each mode: `hdf5` (background
thread streaming contiguous blocks) and `memory` (split resident in RAM; on a CUDA machine also
`device`, resident on the GPU). The first (untimed) epoch warms the page cache.

    python bench/bench_loader.py [--rows 2000000] [--features 140] [--batch-size 32768] [--epochs 3]
"""
import argparse, os, platform, tempfile, time
from pathlib import Path

import numpy as np
import torch

from msa.core import ColumnSchema, xp_coefficient_names
from msa.loader import StoreLoader
from msa.store import StoreWriter, open_store


def write_store(path, n_rows, n_features, chunk=65536, seed=0):
    rng = np.random.default_rng(seed)
    n_xp = n_features - 12
    schema = ColumnSchema(xp=xp_coefficient_names(n_xp // 2, n_xp - n_xp // 2))
    base_v = rng.normal(size=(chunk, schema.n_features)).astype(np.float32)
    base_e = np.abs(base_v) * 0.1
    t = time.perf_counter()
    with StoreWriter(path, schema, chunk_rows=chunk, scaler_rows=200_000) as w:
        for i in range(0, n_rows, chunk):
            m = min(chunk, n_rows - i)
            w.append(np.arange(i, i + m, dtype=np.int64) * 7919 + 1, base_v[:m], base_e[:m])
    return time.perf_counter() - t


def time_mode(store, mode, batch_size, epochs, device, workers):
    dl = StoreLoader(store, 'train', batch_size, device=device, in_memory=(mode != 'hdf5'), seed=0,
                     device_budget=None if mode == 'device' else 0, workers=workers)
    for b in dl: pass                      # warm-up epoch: page cache / load into memory
    if device.type == 'cuda': torch.cuda.synchronize()
    t, cpu, rows = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        for x, xe in dl: rows += len(x)
    if device.type == 'cuda': torch.cuda.synchronize()
    return dl.mode, rows / (time.perf_counter() - t), rows / (time.process_time() - cpu), dl.workers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=2_000_000)
    ap.add_argument('--features', type=int, default=140)
    ap.add_argument('--batch-size', type=int, default=32768)
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--workers', type=int, default=None, help='prefetch threads of the HDF5 mode (default: the loader\'s)')
    ap.add_argument('--dir', default=None, help='where to write the temporary store (default: system temp)')
    args = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  {platform.node()}  {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} cores, torch {torch.__version__}, device {device}'
          + (f' ({torch.cuda.get_device_name()})' if device.type == 'cuda' else ''))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / 'bench.h5'
        dt = write_store(path, args.rows, args.features)
        size = path.stat().st_size / 2**30
        print(f'wrote {args.rows:,} rows x {args.features} features (values + errors) = {size:.2f} GiB in {dt:.1f} s '
              f'({args.rows / dt:,.0f} rows/s)')
        with open_store(path) as st:
            modes = ['hdf5', 'memory'] + (['device'] if device.type == 'cuda' else [])
            for mode in modes:
                got, rate, per_cpu, workers = time_mode(st, mode, args.batch_size, args.epochs, device, args.workers)
                print(f'{got:>7} mode: {rate:>13,.0f} rows/s wall, {per_cpu:>13,.0f} rows per CPU-second '
                      f'(batch {args.batch_size}, {args.epochs} epochs of the training split, {workers} worker thread(s))')
    print(f'load average after: {os.getloadavg()[0]:.1f} (other processes share the cores)')


if __name__ == '__main__':
    main()
