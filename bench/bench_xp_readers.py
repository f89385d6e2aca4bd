"""Speed of the XP_CONTINUOUS readers of `msa.xp` on large files built from real archive rows.

Usage: python bench/bench_xp_readers.py [--n-stars 20000] [--repeat 1] [--threads 1]

Builds, in a temporary folder, a DataLink CSV and a bulk-style ECSV .csv.gz of `--n-stars` stars by
repeating the real rows of nbs/files/gaia_xp (new source_ids, one RP-only star in every three),
then prints wall and CPU time and stars/s for: the uncompressed CSV, the .csv.gz, bare gzip decompression of the same
.csv.gz, and `read_many` over two files with 1 and 2 worker processes. `--threads` limits
pyarrow's thread pool; "stars per CPU-s" is the per-core rate (less sensitive to other jobs on the
machine than wall time). Targets (issue): .csv.gz into arrays <= 2x bare
decompression; uncompressed DataLink CSV >= 6,000 stars/s per core.
"""
import argparse, datetime, gzip, os, platform, resource, shlex, sys, tempfile, time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT/'nbs'/'files'/'gaia_xp'/'gaiaxpy_fixtures'


def _rows(path:Path)->tuple[str, list[str], list[str]]:
    "(ECSV header lines or '', column header line, data rows) of a small real file."
    lines = path.read_text().splitlines()
    comments = [l for l in lines if l.startswith('#')]
    rest = [l for l in lines if not l.startswith('#')]
    return '\n'.join(comments) + ('\n' if comments else ''), rest[0], rest[1:]


def build_file(src:Path, out:Path, n_stars:int, first_id:int, gz:bool=False)->Path:
    "Repeat the rows of `src` with new source_ids until `n_stars` rows; write `out` (gzip if `gz`)."
    header, cols, rows = _rows(src)
    tails = [r[r.index(','):] for r in rows]
    body = '\n'.join(f'{first_id + i}{tails[i % len(tails)]}' for i in range(n_stars))
    text = (header + cols + '\n' + body + '\n').encode()
    out.write_bytes(gzip.compress(text, compresslevel=6) if gz else text)
    return out


def _cpu()->float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat:int)->tuple[float, float]:
    "Best wall time and best CPU time (this process, all threads) of `repeat` calls."
    wall = cpu = np.inf
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu(); fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, _cpu() - c)
    return wall, cpu


def gunzip(path:Path)->int:
    n = 0
    with gzip.open(path, 'rb') as f:
        while chunk := f.read(1 << 24): n += len(chunk)
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n-stars', type=int, default=20000)
    p.add_argument('--repeat', type=int, default=1)
    p.add_argument('--threads', type=int, default=1, help='pyarrow CPU threads (1: per-core numbers)')
    a = p.parse_args(argv)
    pa.set_cpu_count(a.threads); pa.set_io_thread_count(max(a.threads, 1))
    from msa.xp import read_xp_continuous, read_many
    n = a.n_stars
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        csv = build_file(FIX/'XP_CONTINUOUS_RAW_with_missing_BP.csv', d/'datalink.csv', n, 10**15)
        ecsv_gz = build_file(FIX/'XP_CONTINUOUS_RAW_with_missing_BP.ecsv', d/'XpContinuousMeanSpectrum_0.csv.gz', n, 10**15, gz=True)
        halves = [build_file(FIX/'XP_CONTINUOUS_RAW_with_missing_BP.csv', d/f'half{i}.csv', n//2, 10**15 + i*n) for i in (0, 1)]
        check = read_xp_continuous(csv)
        assert len(check) == n and np.isnan(check.bp_coefficients[1]).all() and check.bp_correlations.shape == (n, 1485)
        res, load0 = [], os.getloadavg()[0]
        def add(what, t, n_stars, extra=''): res.append((what, t[0], t[1], n_stars, extra))
        size = lambda p: f'{p.stat().st_size/1e6:.0f} MB'
        add('DataLink CSV, all columns', timed(lambda: read_xp_continuous(csv), a.repeat), n, size(csv))
        add('DataLink CSV, correlations=False', timed(lambda: read_xp_continuous(csv, correlations=False), a.repeat), n, size(csv))
        t_gz = timed(lambda: gunzip(ecsv_gz), a.repeat)
        add('bare gzip decompression of the .csv.gz', t_gz, n, f'{size(ecsv_gz)} -> {gunzip(ecsv_gz)/1e6:.0f} MB')
        for corr in (True, False):
            t = timed(lambda: read_xp_continuous(ecsv_gz, correlations=corr), a.repeat)
            add(f'ECSV .csv.gz, {"all columns" if corr else "correlations=False"}', t, n,
                f'{t[0]/t_gz[0]:.2f} x decompression (wall), {t[1]/t_gz[1]:.2f} x (CPU)')
        for w in (1, 2):
            t = timed(lambda: read_many(halves, n_workers=w), a.repeat)
            add(f'read_many, 2 CSV files, {w} process(es)', t, n, 'CPU column: parent process only' if w > 1 else '')
        load1 = os.getloadavg()[0]
    print(f'# bench_xp_readers  {datetime.datetime.now().isoformat(timespec="seconds")}')
    print(f'# machine: {platform.platform()}, {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, '
          f'python {platform.python_version()}, pyarrow {pa.__version__}, pyarrow threads={pa.cpu_count()}')
    print(f'# command: {" ".join(shlex.quote(x) for x in [sys.executable.split("/")[-1]] + sys.argv)}')
    print(f'# load average (1 min) before/after: {load0:.1f}/{load1:.1f} on {os.cpu_count()} CPUs; other jobs on the machine slow the wall times')
    print('| what | wall s | CPU s | stars/s (wall) | stars per CPU-s | note |\n|---|---:|---:|---:|---:|---|')
    for what, wall, cpu, k, extra in res: print(f'| {what} | {wall:.2f} | {cpu:.2f} | {k/wall:,.0f} | {k/cpu:,.0f} | {extra} |')

if __name__ == '__main__':
    main()
