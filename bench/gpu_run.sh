#!/usr/bin/env bash
# The one script for a GPU window (about 5 minutes in all): install the Python packages the GPU
# image lacks from carried wheels, install msa itself (editable, no dependencies), then run
# bench/bench_gpu.py and leave every result under $OUT.
#
#   bash bench/gpu_run.sh [WHEEL_DIR] [more bench_gpu.py options]
#
# WHEEL_DIR (default bench/wheels) holds the wheels listed in bench/README.md ("GPU window"),
# downloaded beforehand on a machine with a package index. Nothing is fetched here, torch is never
# touched (every install is --no-deps), and the image's own CUDA torch, numpy, h5py, pyarrow stay.
# Environment: OUT (results folder, default ./bench_gpu_out), PYTHON (default python3),
# BUDGET (seconds for bench_gpu.py, default 230; its optional phases are skipped to fit).
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-bench/wheels}
[ $# -gt 0 ] && shift
OUT=${OUT:-$PWD/bench_gpu_out}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-230}
SITE=${MSA_SITE:-/tmp/msa-site}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
t0=$(date +%s)
log() { echo "[gpu_run $(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/gpu_run.log"; }

log "start $(date -u '+%F %T UTC') on $(hostname), wheels from $WHEELS"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu --format=csv 2>&1 || true
  $PY -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} 2>&1 | tee -a "$OUT/gpu_run.log"

# 1. carried wheels: no index, no dependencies, into a separate folder put first on the path
ls "$WHEELS"/*.whl >/dev/null 2>&1 || { log "no wheels in $WHEELS"; exit 2; }
if ls "$WHEELS" | grep -qiE '^(torch|nvidia|triton)[-_]'; then log "refusing: $WHEELS holds a torch/CUDA wheel"; exit 2; fi
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    2>&1 | tee -a "$OUT/gpu_run.log" || { log "wheel install failed"; exit 3; }
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# 2. msa itself, editable and without dependencies; plain PYTHONPATH if pip cannot build it offline
if $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$OUT/gpu_run.log" 2>&1; then log "msa installed (editable)"
else export PYTHONPATH="$PWD:$PYTHONPATH"; log "msa from PYTHONPATH (editable install failed; see gpu_run.log)"; fi
$PY - <<'EOF' 2>&1 | tee -a "$OUT/gpu_run.log" || { log "imports failed"; exit 4; }
import importlib.metadata as md, torch
import msa, msa.learner, msa.predict, fastai, fastprogress, rtdl_num_embeddings
from astropy.io import fits
print('imports ok: msa', msa.__version__, '| torch', torch.__version__, '|',
      ', '.join(f'{n} {md.version(n)}' for n in ('fastai', 'fastcore', 'fasttransform', 'plum-dispatch', 'fastprogress', 'rtdl_num_embeddings', 'astropy')))
EOF
log "packages ready"

# 3. the benchmark; SIGINT first so that it writes its JSON, then KILL
timeout --signal=INT --kill-after=10 $(( BUDGET + 40 )) \
    $PY bench/bench_gpu.py --json "$OUT/bench_gpu.json" --budget "$BUDGET" "$@" 2>&1 | tee "$OUT/bench_gpu.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  log "time limit: bench_gpu.py was stopped after $(( BUDGET + 40 )) s; the finished phases are in bench_gpu.json"; rc=75
fi
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >>"$OUT/gpu_run.log" 2>&1 || true
log "bench_gpu.py exit $rc; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
