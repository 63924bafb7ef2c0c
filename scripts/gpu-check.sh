#!/usr/bin/env bash
# GPU check for one H100 or H200, in under 4 minutes: the GPU tests, a reduced CUDA sweep with its
# report, then the harness-vs-bare-loop table (printed last).
#
# The device image has torch, JAX and CuPy but not array-api-compat or autograd. Before sending the
# tree, download their wheels into .whl/ (ignored by git) and name .whl in the tool's `carry`:
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps -d .whl array-api-compat autograd
# Results land in $OUT (or /tmp/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

$PY -m pytest -q -p no:cacheprovider tests/test_gpu.py

$PY -m bench run --devices cpu,cuda --backends numpy,jax,torch --problems least_squares \
  --tasks solve,eval --derivatives f,grad,hvp --n 100,1000,10000,31623 --repeats 3 --samples 5 \
  --solve-budget 120 --eval-budget 60 --out "$OUT/gpu.csv" --overwrite --no-progress --report "$OUT/report"

$PY scripts/gpu_bare_loop.py "$OUT/gpu.csv"
