"""Every GPU figure in one run: msa pretraining, the upstream-style loop, prediction, inference, a profile.

All measurements run in one process on one device, in this order (each phase is recorded in the JSON
as soon as it ends; a phase that fails is recorded with its error and the others still run):

  store      a synthetic msa store (140 input features: 55+55 XP coefficients, 22 bands, 8 astrometry
             and context columns; 4 labels on 5 % of the stars; NaNs as in real data), written with
             `StoreWriter`, used by every phase below
  pretrain   `msa.learner.pretrain_learner` (the `paper` network, batch 32768, masking callback,
             bf16 autocast and `torch.compile` on CUDA) timed over N steps of `learn.fit(1)` by a
             callback: samples/s, the share of wall time spent waiting for the next batch ("GPU idle
             share"), peak GPU memory, peak host RSS, the loader's mode (GPU-resident on CUDA when
             the store fits)
  profile    torch.profiler over a few of those training steps: top ops by device (CPU) time, kernel
             time by kind, the GPU's busy share
  upstream   the upstream-equivalent loop: fp32, a torch `DataLoader` over a `TensorDataset` of CPU
             tensors (shuffled), masks drawn on the CPU per batch, the same network, torch Adam
  predict    `msa.predict.predict_store(run_dir, store, out)` end to end (store on disk -> catalogue
             file) with a saved paper-size fine-tuned run (random weights: speed does not depend on them)
  inference  encoder + quantile head alone on device-resident batches of 65536: eager and compiled, bf16
  fastai_adam  the same learner with fastai's own per-tensor `Adam` instead of msa's default (torch's
             AdamW, fused on CUDA): how much the optimiser costs
  hdf5       the same learner fed by the streamed HDF5 mode of `StoreLoader` instead of resident data
  (the last two, and FITS output, only while the --budget lasts)

    python bench/bench_gpu.py --json bench_gpu.json              # on a GPU machine (defaults sized for an H100/H200)
    python bench/bench_gpu.py --tiny --json /tmp/bench_tiny.json # CPU dry run: tiny rows, widths and batches
"""
import argparse, dataclasses, gc, gzip, json, os, platform, shutil, sys, tempfile, time, traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

# figures this benchmark is judged against (bench/README.md, issue "fast on one GPU") and the
# reference points measured on an H100 (the project's design notes)
TARGETS = {'pretrain_samples_per_s': 1_500_000, 'pretrain_samples_per_s_minimum': 1_300_000,
           'predict_stars_per_s': 3_000_000}
REFERENCE_H100 = {'upstream_loop_samples_per_s': 40_869, 'lean_loop_bf16_compiled_samples_per_s': 1_415_950,
                  'fastai_learner_samples_per_s': 1_309_820, 'inference_stars_per_s': 4_366_674}
GAIA_XP_STARS = 219_000_000

# ---------------------------------------------------------------------------------------------------
# host and device bookkeeping

def reset_host_peak()->bool:
    "Reset the kernel's peak-RSS counter (VmHWM) of this process; False where the kernel does not allow it."
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False

def host_peak_gib()->float:
    "Peak resident memory of this process since the last reset (GiB)."
    try:
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 2**20
    except OSError: pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

class Phase:
    "Context manager that records wall time, peak GPU memory and peak host RSS of a phase into `res`."
    def __init__(self, res:dict, device): self.res, self.device = res, device
    def __enter__(self):
        gc.collect()
        if self.device.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(self.device)
        self.res['host_peak_is_per_phase'] = reset_host_peak()
        self.t = time.perf_counter(); return self
    def __exit__(self, typ, exc, tb):
        sync(self.device)
        self.res['phase_wall_s'] = round(time.perf_counter() - self.t, 2)
        self.res['host_peak_rss_gib'] = round(host_peak_gib(), 2)
        if self.device.type == 'cuda': self.res['gpu_peak_alloc_gib'] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)
        if typ is not None and typ is not KeyboardInterrupt:
            self.res['error'] = f'{typ.__name__}: {exc}'
            self.res['traceback'] = traceback.format_exc(limit=8)
            print(f'  !! phase failed: {typ.__name__}: {exc}', flush=True)
            return True   # record and carry on with the next phase

class Budget:
    "Wall-clock budget of the whole run: optional phases are skipped when they would not fit."
    def __init__(self, seconds:float): self.t0, self.seconds = time.perf_counter(), seconds
    @property
    def left(self)->float: return self.seconds - (time.perf_counter() - self.t0)
    def allows(self, cost:float, reserve:float=0.)->bool: return self.left - reserve >= cost

def machine_info(device)->dict:
    info = {'date_utc': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'host': platform.node(),
            'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count(), 'python': platform.python_version(),
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(), 'device': str(device)}
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): info['cpu'] = line.split(':', 1)[1].strip(); break
        info['ram_gib'] = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1)
    except (OSError, ValueError): pass
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    gpu_multiprocessors=p.multi_processor_count)
    from importlib.metadata import version, PackageNotFoundError
    for name in ('fastai', 'fastcore', 'rtdl_num_embeddings', 'h5py', 'numpy', 'pyarrow', 'triton'):
        try: info[name] = version(name)
        except PackageNotFoundError: pass
    import msa
    info['msa'] = msa.__version__
    return info

# ---------------------------------------------------------------------------------------------------
# the synthetic store

PHOTOMETRY = ('g', 'bp', 'rp', 'j', 'h', 'ks', 'w1', 'w2', 'u', 'gsdss', 'rsdss', 'isdss', 'zsdss',
              'gps1', 'rps1', 'ips1', 'zps1', 'yps1', 'gsm', 'rsm', 'ism', 'zsm')        # 22 bands
ASTROMETRY = ('parallax', 'pmra', 'pmdec', 'ebv', 'ra', 'dec', 'l', 'b')                 # 8 columns
INPUT_ONLY = ('ebv', 'ra', 'dec', 'l', 'b')

def bench_data_config():
    "The data section of a run whose store has 110 XP + 22 bands + 8 astrometry/context = 140 inputs."
    from msa.core import DataConfig, LABELS
    return DataConfig(photometry=PHOTOMETRY, astrometry=ASTROMETRY, input_only=INPUT_ONLY, labels=LABELS)

def synthetic_chunk(schema, n:int, rng:np.random.Generator)->tuple:
    "Physical-looking rows: (values, errors, labels, label_errors) float32, NaN = missing."
    F = schema.n_features
    v, e = np.full((n, F), np.nan, np.float32), np.full((n, F), np.nan, np.float32)
    theta = rng.normal(size=(n, 3))                                   # hidden 'stellar parameters'
    g = rng.uniform(8.0, 17.65, n)                                    # G magnitude (XP limit 17.65)
    colour = 0.8 + 0.4 * theta[:, 0]
    # XP block, divided by the G flux: a smooth profile per coefficient, modulated by the parameters
    xp = schema.group_mask('xp'); k = xp.sum()
    profile = np.exp(-np.arange(k) % 55 / 12.0) * np.where(np.arange(k) % 2, -1, 1)
    W = rng.normal(size=(3, k)) * 0.2 * np.abs(profile)
    v[:, xp] = profile + theta @ W + rng.normal(size=(n, k)) * 0.003 * (1 + np.exp(g - 15))[:, None]
    e[:, xp] = 0.003 * (1 + np.exp(g - 15))[:, None] * (0.5 + np.abs(profile))
    phot = {'g': g, 'bp': g + 0.35 * colour, 'rp': g - 0.55 * colour}
    offsets = dict(j=-1.6, h=-2.1, ks=-2.2, w1=-2.3, w2=-2.3, u=1.9, gsdss=0.4, rsdss=-0.1, isdss=-0.3, zsdss=-0.4,
                   gps1=0.3, rps1=-0.1, ips1=-0.3, zps1=-0.4, yps1=-0.5, gsm=0.3, rsm=-0.1, ism=-0.3, zsm=-0.4)
    for b, o in offsets.items(): phot[b] = g + o * colour
    missing = dict(j=0.05, h=0.05, ks=0.05, w1=0.1, w2=0.12, u=0.75, gsdss=0.7, rsdss=0.7, isdss=0.7, zsdss=0.7,
                   gps1=0.3, rps1=0.3, ips1=0.3, zps1=0.3, yps1=0.35, gsm=0.6, rsm=0.6, ism=0.6, zsm=0.6)
    for b in PHOTOMETRY:
        i = schema.index(b)
        v[:, i] = phot[b] + rng.normal(size=n) * 0.01
        e[:, i] = 0.001 + 0.01 * np.exp(g - 16)
        if b in missing: v[rng.random(n) < missing[b], i] = np.nan
    astro = {'parallax': rng.exponential(0.8, n), 'pmra': rng.normal(0, 6, n), 'pmdec': rng.normal(-3, 6, n),
             'ebv': rng.uniform(0, 0.6, n), 'ra': rng.uniform(0, 360, n), 'dec': np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
             'l': rng.uniform(0, 360, n), 'b': np.degrees(np.arcsin(rng.uniform(-1, 1, n)))}
    for c, x in astro.items():
        i = schema.index(c); v[:, i] = x; e[:, i] = (0.02 + 0.05 * np.exp(g - 17)) if c in ('parallax', 'pmra', 'pmdec') else 0.01
    no_xp = rng.random(n) < 0.1                                        # 10 % of the stars have no XP spectrum
    v[np.ix_(no_xp, xp)] = np.nan; e[np.ix_(no_xp, xp)] = np.nan
    L = len(schema.labels)
    y = np.stack([5000 + 900 * theta[:, 0], 3.0 + 1.0 * theta[:, 1], -0.2 + 0.3 * theta[:, 2], 0.1 + 0.08 * theta[:, 2]], 1)[:, :L]
    y[rng.random(n) >= 0.05] = np.nan                                  # labels for 5 % of the stars
    ye = np.abs(y) * 0.02 + 0.01
    return v, e, y.astype(np.float32), ye.astype(np.float32)

def write_store(path:Path, n_rows:int, val_fraction:float, seed:int=0, chunk:int=65536)->dict:
    "Write the benchmark store with `StoreWriter`; the content of one chunk is rolled and perturbed per chunk."
    from msa.core import schema_from_config
    from msa.store import StoreWriter
    data = bench_data_config()
    schema = schema_from_config(data)
    assert schema.n_features == 140, schema.n_features
    rng = np.random.default_rng(seed)
    v0, e0, y0, ye0 = synthetic_chunk(schema, chunk, rng)
    t = time.perf_counter()
    with StoreWriter(path, schema, data.labels, chunk_rows=chunk, scaler_rows=200_000, val_fraction=val_fraction) as w:
        for k, i in enumerate(range(0, n_rows, chunk)):
            m, s = min(chunk, n_rows - i), int(rng.integers(chunk))
            ids = np.arange(i, i + m, dtype=np.int64) * 7919 + 1
            w.append(ids, np.roll(v0, s, 0)[:m] * np.float32(1 + 1e-3 * (k % 7)), np.roll(e0, s, 0)[:m],
                     np.roll(y0, s, 0)[:m], np.roll(ye0, s, 0)[:m])
    dt = time.perf_counter() - t
    return {'rows': n_rows, 'features': schema.n_features, 'labels': list(data.labels), 'val_fraction': val_fraction,
            'gib': round(path.stat().st_size / 2**30, 2), 'write_s': round(dt, 1), 'write_rows_per_s': round(n_rows / dt)}

# ---------------------------------------------------------------------------------------------------
# timing fastai training steps

class TimedLoader:
    "Wraps a loader: counts the time spent waiting for each next batch while `active`."
    def __init__(self, dl): self.dl, self.wait, self.active = dl, 0.0, False
    def __len__(self): return len(self.dl)
    def __getattr__(self, name): return getattr(self.dl, name)
    def __iter__(self):
        it = iter(self.dl)
        while True:
            t = time.perf_counter()
            try: b = next(it)
            except StopIteration: return
            if self.active: self.wait += time.perf_counter() - t
            yield b

def make_step_timer(warmup:int, steps:int, seconds:float, device):
    "A fastai callback: after `warmup` steps, time up to `steps` steps (or `seconds`), then cancel the fit."
    from fastai.callback.core import Callback, CancelFitException
    class StepTimer(Callback):
        order = 100   # after the recorder, which fetches each step's loss to the host (a synchronisation)
        def before_fit(self): self.n, self.rows, self.t0, self.t1, self.step_s, self.last = 0, 0, None, None, [], None
        def before_train(self): self.learn.dl = self.timed = TimedLoader(self.learn.dl)
        def after_batch(self):
            if not self.training: return
            self.n += 1
            now = time.perf_counter()
            if self.t0 is None:
                if self.n == 1: self.first_step_s = now - self._fit_start
                if self.n >= warmup: sync(device); self.t0 = self.last = time.perf_counter(); self.timed.active = True
            else:
                self.rows += len(self.learn.xb[0]); self.step_s.append(now - self.last); self.last = now
                if len(self.step_s) >= steps or now - self.t0 >= seconds or self.iter == self.n_iter - 1:
                    sync(device); self.t1 = time.perf_counter(); raise CancelFitException()
        def begin(self): self._fit_start = time.perf_counter(); return self
        def result(self)->dict:
            if self.t1 is None: raise RuntimeError(f'only {self.n} training steps ran: the store is too small for warm-up + timing')
            wall = self.t1 - self.t0
            return {'steps_timed': len(self.step_s), 'rows_timed': self.rows, 'wall_s': round(wall, 3),
                    'samples_per_s': round(self.rows / wall), 'loader_wait_share': round(self.timed.wait / wall, 4),
                    'step_ms_median': round(1e3 * float(np.median(self.step_s)), 2),
                    'step_ms_p90': round(1e3 * float(np.percentile(self.step_s, 90)), 2),
                    'first_step_s': round(self.first_step_s, 1)}   # includes torch.compile's compilation
    return StepTimer()

def drop_short_block(dl):
    "Serve only full batches: the short last block would make `torch.compile` compile a second graph mid-timing."
    if len(dl.bounds) > 1 and dl.n_rows % dl.bs: dl.bounds = dl.bounds[:-1]
    return dl

def timed_fit(learn, lr, warmup, steps, seconds, device)->dict:
    timer = make_step_timer(warmup, steps, seconds, device).begin()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr, cbs=[timer])
    return timer.result()

def matmul_params(modules)->int:
    "Weights of the matrix products (linear layers, per-feature embedding matrices) in `modules`."
    n = 0
    for m in modules:
        for name, p in m.named_parameters():
            if p.ndim >= 2 and 'mask_embedding' not in name and not name.endswith('periodic.weight'): n += p.numel()
    return n

# ---------------------------------------------------------------------------------------------------
# phases

def bench_config(args, device):
    "The run config of the benchmark: the `paper` preset (or tiny widths), batch size, bf16/compile."
    from msa.core import ModelConfig, get_config
    cfg = get_config(args.preset)
    if args.tiny: cfg = dataclasses.replace(cfg, model=ModelConfig(d_embedding=4, n_frequencies=4, encoder_widths=(64, 32),
                                                                   decoder_widths=(32,)))
    pre = dataclasses.replace(cfg.pretrain, batch_size=args.batch_size, bf16=args.bf16, compile=args.compile)
    fin = dataclasses.replace(cfg.finetune, bf16=args.bf16, compile=False)
    return dataclasses.replace(cfg, data=bench_data_config(), pretrain=pre, finetune=fin)

def phase_pretrain(args, cfg, store, work, device, res)->'Learner':
    from msa.learner import pretrain_learner
    from msa.model import n_parameters
    learn = pretrain_learner(store, work/'pretrain', cfg, device)
    drop_short_block(learn.dls.train)
    res.update(network=f'{args.preset}{" (tiny widths)" if args.tiny else ""}', parameters=n_parameters(learn.model),
               batch_size=cfg.pretrain.batch_size, bf16=bool(cfg.pretrain.bf16 and device.type == 'cuda'),
               compile=cfg.pretrain.compile, optimizer='torch AdamW (msa default; fused on CUDA)')
    t = time.perf_counter(); learn.dls.train.one_batch(); sync(device)     # decides the loader mode, loads resident data
    res['loader_mode'], res['loader_load_s'] = learn.dls.train.mode, round(time.perf_counter() - t, 1)
    res.update(timed_fit(learn, cfg.pretrain.lr, args.warmup, args.steps, args.seconds, device))
    res['train_batches_per_epoch'] = len(learn.dls.train)
    flops = 6 * matmul_params([learn.model]) * res['samples_per_s']
    res['approx_tflops'] = round(flops / 1e12, 1)
    return learn

def phase_fastai_adam(args, cfg, learn, device, res):
    "The same learner with fastai's own `Adam` (a Python loop over parameter tensors) instead of msa's torch AdamW."
    from fastai.optimizer import Adam
    saved = learn.opt_func, learn.opt
    learn.model.to(device)
    learn.opt_func = Adam
    learn.create_opt()
    try:
        res.update(optimizer="fastai's Adam")
        res.update(timed_fit(learn, cfg.pretrain.lr, args.warmup, args.steps, args.seconds, device))
    finally: learn.opt_func, learn.opt = saved

def phase_hdf5(args, cfg, learn, store, device, res):
    "The same learner fed by the streamed HDF5 mode (blocks read by prefetch threads, pinned, copied per batch)."
    from msa.loader import make_dataloaders
    saved = learn.dls
    learn.dls = make_dataloaders(store, batch_size=cfg.pretrain.batch_size, device=device, seed=1, in_memory=False)
    drop_short_block(learn.dls.train)
    try:
        res.update(timed_fit(learn, cfg.pretrain.lr, min(args.warmup, 3), args.steps, args.seconds, device))
        res['loader_mode'] = learn.dls.train.mode; res['loader_workers'] = learn.dls.train.workers
    finally: learn.dls = saved

def kernel_summary(prof, wall_us:float)->dict:
    "Device time of the profiled steps by kind of kernel, and the share of wall time the device was busy."
    from torch.autograd import DeviceType
    kinds = {'matmul (cuBLAS/CUTLASS)': ('gemm', 'nvjet', 'cutlass', 'xmma', 'cublas', 'wgmma'),
             'fused (compiled Triton)': ('triton',), 'optimizer (foreach/fused)': ('multi_tensor', 'foreach', 'fused_adam', 'adam'),
             'copies and fills': ('memcpy', 'memset')}
    spans, by_kind = [], {}
    for e in prof.events():
        if e.device_type != DeviceType.CUDA: continue
        s, t = e.time_range.start, e.time_range.end
        spans.append((s, t))
        name = e.name.lower()
        kind = next((k for k, keys in kinds.items() if any(x in name for x in keys)), 'other eager kernels')
        by_kind[kind] = by_kind.get(kind, 0.0) + (t - s)
    spans.sort(); busy, end = 0.0, -1e30
    for s, t in spans:
        if t > end: busy += t - max(s, end); end = t
    total = sum(by_kind.values()) or 1.0
    return {'gpu_busy_share': round(busy / wall_us, 4) if wall_us else None,
            'kernel_time_share': {k: round(v / total, 4) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            'kernels': len(spans)}

def phase_profile(args, cfg, learn, device, res, out_dir:Path):
    "torch.profiler over a few training steps of the real learner (after warm-up)."
    from fastai.callback.core import Callback, CancelFitException
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    warm, active = 2, args.profile_steps
    class Prof(Callback):
        order = 100
        def before_fit(self): self.n_seen, self.torch_prof = 0, None
        def after_batch(self):
            if not self.training: return
            self.n_seen += 1
            if self.n_seen == warm:
                sync(device); self.torch_prof = profile(activities=acts, record_shapes=False)
                self.torch_prof.__enter__(); self.t_start = time.perf_counter()
            elif self.n_seen == warm + active or (self.torch_prof is not None and self.iter == self.n_iter - 1):
                sync(device); self.wall = time.perf_counter() - self.t_start
                self.torch_prof.__exit__(None, None, None); raise CancelFitException()
    cb = Prof()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cfg.pretrain.lr, cbs=[cb])
    prof, n_prof = cb.torch_prof, cb.n_seen - warm
    sort = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    try: table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    except (KeyError, AttributeError, ValueError):
        sort = 'self_device_time_total'; table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    res.update(steps_profiled=n_prof, wall_s=round(cb.wall, 3), sorted_by=sort,
               step_ms_under_profiler=round(1e3 * cb.wall / max(n_prof, 1), 2))
    if device.type == 'cuda': res.update(kernel_summary(prof, cb.wall * 1e6))
    head = (f'torch.profiler: {n_prof} training steps of msa pretraining ({res.get("network", "")}), batch '
            f'{cfg.pretrain.batch_size}, on {device}; sorted by {sort}\n')
    shares = {k: v for k, v in res.items() if 'share' in k}
    (out_dir/'profile_train.txt').write_text(head + table + '\n' + (json.dumps(shares, indent=1) + '\n' if shares else ''))
    print(table, flush=True)
    res['table_file'] = str(out_dir/'profile_train.txt')
    if args.trace and device.type == 'cuda':
        raw = Path(tempfile.mkstemp(suffix='.json')[1]); prof.export_chrome_trace(str(raw))
        with open(raw, 'rb') as f, gzip.open(out_dir/'trace_train.json.gz', 'wb') as g: shutil.copyfileobj(f, g)
        raw.unlink(); gz = out_dir/'trace_train.json.gz'
        mib = gz.stat().st_size / 2**20
        if mib > 15: gz.unlink(); res['trace_file'] = f'dropped: {mib:.0f} MiB is more than a GPU window brings back'
        else: res['trace_file'] = str(gz)

def phase_upstream(args, cfg, store, device, res):
    "The upstream-style loop: per-sample Dataset indexing + collate, CPU masks, fp32, torch Adam."
    import dataclasses as dc
    from torch.utils.data import DataLoader, TensorDataset
    from msa.callbacks import column_roles, draw_hidden
    from msa.losses import ReconstructionLoss
    from msa.model import MaskedStellarAutoencoder
    n = min(store.n_rows, args.upstream_rows)
    v, e = store.read(slice(0, n), ('values', 'errors'))
    x, xe = (torch.from_numpy(a) for a in store.scaler.transform(v, e))
    del v, e
    schema = dc.replace(store.schema, labels=())
    torch.manual_seed(0)
    model = MaskedStellarAutoencoder(schema=schema, config=cfg.model).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.pretrain.lr)
    roles = {k: torch.as_tensor(r) for k, r in column_roles(schema).items()}
    rec = torch.as_tensor(np.flatnonzero(schema.reconstructed_mask()))
    loss_func = ReconstructionLoss(cfg.pretrain.loss)
    rec = rec.to(device)
    dl = DataLoader(TensorDataset(x, xe), batch_size=cfg.pretrain.batch_size, shuffle=True, drop_last=True)
    warm, steps, wait, step_s, rows, t0 = args.upstream_warmup, args.upstream_steps, 0.0, [], 0, None
    it, k = iter(dl), 0
    while True:
        t = time.perf_counter()
        try: xb, eb = next(it)
        except StopIteration: it = iter(dl); continue
        hidden = draw_hidden(len(xb), roles, cfg.pretrain.mask_ratio_xp, cfg.pretrain.mask_ratio_features)   # on the CPU
        xin = xb.masked_fill(hidden, float('nan'))                                                          # on the CPU
        if t0 is not None: wait += time.perf_counter() - t
        xin, xb, eb, hidden = (a.to(device) for a in (xin, xb, eb, hidden))
        pred = model(xin, hidden)
        loss = loss_func(pred, xb[:, rec], eb[:, rec], hidden[:, rec])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        loss.item()                                            # upstream logged the loss of every step
        k += 1; now = time.perf_counter()
        if t0 is None:
            if k >= warm: sync(device); t0 = last = time.perf_counter()
            continue
        rows += len(xb); step_s.append(now - last); last = now
        if len(step_s) >= steps or now - t0 >= args.seconds: break
    sync(device); wall = time.perf_counter() - t0
    res.update(loop='torch DataLoader(TensorDataset) of CPU tensors, shuffle, CPU masks, fp32, torch Adam',
               rows_in_dataset=n, batch_size=cfg.pretrain.batch_size, steps_timed=len(step_s), wall_s=round(wall, 3),
               samples_per_s=round(rows / wall), loader_wait_share=round(wait / wall, 4),
               step_ms_median=round(1e3 * float(np.median(step_s)), 1))

def phase_finetune_run(args, cfg, store, work, device, res)->Path:
    "A paper-size fine-tuned run directory (no training: the weights do not change the speed)."
    from msa.learner import finetune_learner
    from msa.runs import save_run
    learn = finetune_learner(store, work/'finetune', config=cfg, device=device)
    save_run(learn.run_info, learn.model)
    res.update(run_dir=str(learn.run_info.out), labels=list(learn.run_info.labels))
    return learn.run_info.out

def phase_predict(args, run_dir:Path, store_path:Path, work, device, fmt:str, res):
    "msa.predict.predict_store(run_dir, store, out): store on disk -> catalogue file, end to end."
    from msa.predict import predict_store
    n = args.predict_rows or None
    rows = slice(0, n)
    warm = work/f'warm.{fmt}'
    predict_store(run_dir, store_path, warm, batch_size=args.predict_batch_size, rows=slice(0, 2 * args.predict_batch_size),
                  device=device, progress=False)                                  # CUDA context, cuBLAS, page cache
    warm.unlink()
    reset_host_peak()
    out = work/f'catalogue.{fmt}'
    t = time.perf_counter()
    rep = predict_store(run_dir, store_path, out, batch_size=args.predict_batch_size, rows=rows, device=device, progress=False)
    sync(device); dt = time.perf_counter() - t
    res.update(format=fmt, stars=rep.n_rows, wall_s=round(dt, 2), stars_per_s=round(rep.n_rows / dt),
               batch_size=args.predict_batch_size, out_mib=round(out.stat().st_size / 2**20, 1),
               host_peak_rss_gib_predict=round(host_peak_gib(), 2))
    out.unlink()

def phase_inference(args, run_dir:Path, store, device, res):
    "Encoder + quantile head only, on device-resident scaled batches: eager and (CUDA) compiled, bf16 on CUDA."
    from msa.predict import load_predictor
    p = load_predictor(run_dir, device)
    model, bs = p.model, args.predict_batch_size
    v, _ = store.read(slice(0, min(store.n_rows, 3 * bs)), ('values', 'errors'))
    x = torch.from_numpy(p.scaler.transform(v)[0])
    xs = [x[i * bs:(i + 1) * bs].to(device) for i in range(max(1, len(x) // bs))]   # rotate among a few batches
    def infer(xb): return model.head(model.encoder(xb))
    variants = [('eager', infer)] + ([('compiled', torch.compile(infer))] if args.compile else [])
    res.update(batch_size=len(xs[0]), bf16=device.type == 'cuda', parameters_encoder_head=sum(q.numel() for q in model.parameters()))
    for name, f in variants:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
            t = time.perf_counter()
            for i in range(3): f(xs[i % len(xs)])
            sync(device); first = time.perf_counter() - t
            k, t = 0, time.perf_counter()
            while True:
                f(xs[k % len(xs)]); k += 1
                if k % 10 == 0 or k >= args.inference_iters:
                    sync(device)
                    if k >= args.inference_iters or time.perf_counter() - t >= args.seconds: break
            dt = time.perf_counter() - t
        res[name] = {'stars_per_s': round(k * len(xs[0]) / dt), 'iterations': k, 'warmup_s': round(first, 1)}
        res[name]['approx_tflops'] = round(2 * matmul_params([model.encoder, model.head]) * res[name]['stars_per_s'] / 1e12, 1)

# ---------------------------------------------------------------------------------------------------
# report

def fmt_rate(x): return '-' if x is None else f'{x:,.0f}'

def summary_lines(R:dict)->list[str]:
    P = R['phases']
    g = lambda ph, k: P.get(ph, {}).get(k)
    pre, up = g('pretrain', 'samples_per_s'), g('upstream', 'samples_per_s')
    rows = [('pretraining, msa learner (GPU-resident)' if g('pretrain', 'loader_mode') == 'device' else
             f'pretraining, msa learner ({g("pretrain", "loader_mode")} loader)', pre, 'samples/s',
             f'target >= {TARGETS["pretrain_samples_per_s"]:,} (min {TARGETS["pretrain_samples_per_s_minimum"]:,})'),
            ('  device idle share (waiting for batches)', g('pretrain', 'loader_wait_share'), 'share', ''),
            ("pretraining, fastai's own Adam", g('fastai_adam', 'samples_per_s'), 'samples/s', 'msa uses torch AdamW (fused on CUDA)'),
            ('pretraining, streamed HDF5 loader', g('hdf5', 'samples_per_s'), 'samples/s', ''),
            ('upstream-equivalent loop (fp32, DataLoader)', up, 'samples/s', f'H100 reference {REFERENCE_H100["upstream_loop_samples_per_s"]:,}'),
            ('  ratio msa / upstream (same run)', None if not (pre and up) else pre / up, 'x', ''),
            ('prediction, store -> catalogue (predict_store)', g('predict', 'stars_per_s'), 'stars/s', f'target >= {TARGETS["predict_stars_per_s"]:,}'),
            ('prediction, FITS output', g('predict_fits', 'stars_per_s'), 'stars/s', ''),
            ('inference only, eager', (g('inference', 'eager') or {}).get('stars_per_s'), 'stars/s', ''),
            ('inference only, compiled', (g('inference', 'compiled') or {}).get('stars_per_s'), 'stars/s',
             f'H100 reference {REFERENCE_H100["inference_stars_per_s"]:,}')]
    out = [R['what'], f'{"what":<50} {"value":>14}  {"unit":<9} target / reference', '-' * 110]
    for what, val, unit, ref in rows:
        if val is None: v = 'not run'
        elif unit == 'share': v = f'{100 * val:.1f} %'
        elif unit == 'x': v = f'{val:,.1f}'
        else: v = fmt_rate(val)
        out.append(f'{what:<50} {v:>14}  {unit:<9} {ref}')
    mem = [f'{ph}: GPU {P[ph]["gpu_peak_alloc_gib"]} GiB' for ph in P if 'gpu_peak_alloc_gib' in P[ph]]
    host = [f'{ph}: {P[ph]["host_peak_rss_gib"]} GiB' for ph in P if 'host_peak_rss_gib' in P[ph]]
    if mem: out.append('peak GPU memory  ' + '; '.join(mem))
    out.append('peak host RSS    ' + '; '.join(host))
    if g('profile', 'gpu_busy_share') is not None:
        out.append(f'profile: GPU busy {100 * g("profile", "gpu_busy_share"):.1f} % of {g("profile", "steps_profiled")} steps; '
                   'kernel time ' + ', '.join(f'{k} {100 * v:.0f} %' for k, v in g('profile', 'kernel_time_share').items()))
    if R['args'].get('tiny'): pre = up = None     # a dry run's rates say nothing about a full pass
    if pre: out.append(f'one pass over {GAIA_XP_STARS / 1e6:.0f}M XP stars at the measured pretraining rate: {GAIA_XP_STARS / pre / 60:,.1f} min'
                       + (f'; at the upstream rate: {GAIA_XP_STARS / up / 60:,.0f} min' if up else ''))
    if g('predict', 'stars_per_s') and not R['args'].get('tiny'): out.append(f'prediction of {GAIA_XP_STARS / 1e6:.0f}M stars at the measured rate: '
                                               f'{GAIA_XP_STARS / g("predict", "stars_per_s") / 60:,.1f} min')
    failed = [f'{ph}: {P[ph]["error"]}' for ph in P if 'error' in P[ph]]
    skipped = R.get('skipped', [])
    if failed: out.append('FAILED phases: ' + ' | '.join(failed))
    if R.get('interrupted'): out.append(f'interrupted {R["interrupted"]} (time limit)')
    if skipped: out.append('skipped phases: ' + ', '.join(skipped))
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default=None, help="'cuda', 'cuda:1', 'cpu' (default: CUDA if available)")
    ap.add_argument('--tiny', action='store_true', help='CPU dry run: tiny store, widths and batches (checks the script, not the speed)')
    ap.add_argument('--preset', default='paper', help='network preset (msa.core.get_config)')
    ap.add_argument('--rows', type=int, default=None, help='stars in the synthetic store (default 4,000,000; tiny 20,000)')
    ap.add_argument('--batch-size', type=int, default=None, help='pretraining batch (default 32768; tiny 1024)')
    ap.add_argument('--predict-batch-size', type=int, default=None, help='prediction/inference batch (default 65536; tiny 4096)')
    ap.add_argument('--predict-rows', type=int, default=None, help='stars predicted end to end (default: the whole store)')
    ap.add_argument('--steps', type=int, default=None, help='timed training steps per measurement, at most (default 100; tiny 6)')
    ap.add_argument('--seconds', type=float, default=None, help='timed seconds per measurement, at most (default 10; tiny 3)')
    ap.add_argument('--warmup', type=int, default=None, help='untimed steps first (compilation happens here; default 5; tiny 2)')
    ap.add_argument('--upstream-steps', type=int, default=None, help='timed steps of the upstream loop (default 8; tiny 3)')
    ap.add_argument('--upstream-warmup', type=int, default=2)
    ap.add_argument('--upstream-rows', type=int, default=1_000_000, help='rows of the TensorDataset of the upstream loop')
    ap.add_argument('--inference-iters', type=int, default=None, help='timed forward passes of the inference phase (default 100; tiny 5)')
    ap.add_argument('--profile-steps', type=int, default=None, help='training steps under the profiler (default 5; tiny 3)')
    ap.add_argument('--formats', default=None, help="catalogue formats timed end to end (default 'parquet,fits'; the first is the headline)")
    ap.add_argument('--compile', action=argparse.BooleanOptionalAction, default=None, help='torch.compile (default: on CUDA only)')
    ap.add_argument('--bf16', action=argparse.BooleanOptionalAction, default=True, help='bf16 autocast on CUDA')
    ap.add_argument('--trace', action=argparse.BooleanOptionalAction, default=True, help='save a gzipped Chrome trace of the profiled steps (CUDA)')
    ap.add_argument('--skip', default='', help='comma-separated phases to skip: profile,fastai_adam,hdf5,upstream,predict,inference')
    ap.add_argument('--budget', type=float, default=None, help='seconds for the whole run; optional phases are skipped to fit (default 230; tiny none)')
    ap.add_argument('--val-fraction', type=float, default=0.02, help='validation share of the store (unused by the timings)')
    ap.add_argument('--workdir', default=None, help='where the store and runs are written (default: a temporary folder, removed)')
    ap.add_argument('--json', default='bench_gpu.json', help='results file (written after every phase); other outputs go beside it')
    args = ap.parse_args(argv)

    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    t = args.tiny
    for name, big, small in (('rows', 4_000_000, 20_000), ('batch_size', 32768, 1024), ('predict_batch_size', 65536, 4096),
                             ('steps', 100, 6), ('seconds', 10.0, 3.0), ('warmup', 5, 2), ('upstream_steps', 8, 3),
                             ('inference_iters', 100, 5), ('profile_steps', 5, 3), ('budget', 230.0, 1e9)):
        if getattr(args, name) is None: setattr(args, name, small if t else big)
    if args.compile is None: args.compile = device.type == 'cuda'
    if args.formats is None: args.formats = 'parquet,fits'
    if t: args.upstream_rows = min(args.upstream_rows, args.rows)
    skip = {s.strip() for s in args.skip.split(',') if s.strip()}
    json_path = Path(args.json); json_path.parent.mkdir(parents=True, exist_ok=True)
    out_dir = json_path.parent
    budget = Budget(args.budget)

    R = {'what': 'bench/bench_gpu.py: msa on one device' + (' -- CPU DRY RUN at tiny size, not a speed figure' if t else ''),
         'command': 'python ' + ' '.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
         'machine': machine_info(device), 'args': vars(args), 'targets': TARGETS, 'reference_h100': REFERENCE_H100,
         'phases': {}, 'skipped': []}
    P = R['phases']
    def save(): json_path.write_text(json.dumps(R, indent=1, default=str))
    def banner(name):
        left = f', {budget.left:.0f} s of the budget left' if budget.seconds < 1e8 else ''
        print(f'\n== {name}  (t = {time.perf_counter() - budget.t0:.0f} s{left})', flush=True)
    def want(name, cost, reserve=0.):
        if name in skip: R['skipped'].append(f'{name} (--skip)'); return False
        if not budget.allows(cost, reserve): R['skipped'].append(f'{name} (budget: {budget.left:.0f} s left)'); return False
        return True
    print(R['what']); print(json.dumps(R['machine'])); save()
    # rough costs of the optional phases on an H100/H200 (seconds); the essential phases come first
    # (store, pretrain, profile, upstream, predict, inference) and run whatever the budget says
    big = not t
    cost = dict(fastai_adam=15 if big else 0, hdf5=25 if big else 0, fits=15 if big else 0)

    tmp = tempfile.TemporaryDirectory(dir=args.workdir, prefix='msa-bench-gpu-')
    work = Path(tmp.name)
    from msa.store import open_store
    from msa.core import seed_everything
    def run_phase(name, title, fn, *a):
        "Run `fn(*a, res)` as one phase: timed, its figures (or its error) recorded under `name`."
        banner(title); P[name] = res = {}
        out = None
        with Phase(res, device): out = fn(*a, res)
        print(json.dumps({k: v for k, v in res.items() if k != 'traceback'})); save()
        return None if 'error' in res else out
    try:
        store_path = work/'bench.h5'
        run_phase('store', 'store', lambda res: res.update(write_store(store_path, args.rows, args.val_fraction)))
        store = open_store(store_path)
        cfg = bench_config(args, device)

        learn = run_phase('pretrain', 'pretrain (msa learner)', phase_pretrain, args, cfg, store, work, device)
        if learn is not None and 'profile' not in skip:
            run_phase('profile', 'profile', lambda res: (res.update(network=P['pretrain'].get('network')),
                                                         phase_profile(args, cfg, learn, device, res, out_dir)))
        elif learn is not None: R['skipped'].append('profile (--skip)')

        if want('upstream', 0):
            seed_everything(0)
            run_phase('upstream', 'upstream-equivalent loop', phase_upstream, args, cfg, store, device)
            gc.collect()

        run_dir = None
        if 'predict' not in skip or 'inference' not in skip:
            run_dir = run_phase('finetune_run', 'fine-tuned run for prediction', phase_finetune_run, args, cfg, store, work, device)
        fmts = [f.strip() for f in args.formats.split(',') if f.strip()]
        if run_dir is not None and want('predict', 0):
            run_phase('predict', f'predict_store -> {fmts[0]}', phase_predict, args, run_dir, store_path, work, device, fmts[0])
        if run_dir is not None and want('inference', 0):
            run_phase('inference', 'inference only', phase_inference, args, run_dir, store, device)

        # optional, as the budget allows: variants of the pretraining measurement, more formats
        if learn is not None and want('fastai_adam', cost['fastai_adam']):
            run_phase('fastai_adam', "pretrain with fastai's Adam", phase_fastai_adam, args, cfg, learn, device)
        if learn is not None and want('hdf5', cost['hdf5']):
            run_phase('hdf5', 'pretrain from the streamed HDF5 loader', phase_hdf5, args, cfg, learn, store, device)
        for f in fmts[1:]:
            if run_dir is not None and want(f'predict_{f}', cost['fits']):
                run_phase(f'predict_{f}', f'predict_store -> {f}', phase_predict, args, run_dir, store_path, work, device, f)
        del learn
        store.close()
    except KeyboardInterrupt:   # gpu_run.sh's timeout: keep what was measured, print the table
        R['interrupted'] = f'at t = {time.perf_counter() - budget.t0:.0f} s'
        print(f'\n!! interrupted {R["interrupted"]}: the phases above are kept', flush=True)
    finally:
        R['total_wall_s'] = round(time.perf_counter() - budget.t0, 1)
        save()
        tmp.cleanup()
    lines = summary_lines(R)
    print('\n' + '\n'.join(lines))
    print(f'\ntotal {R["total_wall_s"]} s; results in {json_path}')
    R['summary'] = lines; save()
    return R


if __name__ == '__main__':
    main()
