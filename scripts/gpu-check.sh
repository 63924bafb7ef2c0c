#!/usr/bin/env bash
# GPU check for one H100 or H200, about 4 minutes (at most 8.5: the stage limits add up to 510 s, so give
# the device tool a timeout of 540 s or more): the harness-vs-bare-loop table, a CUDA sweep of
# least squares to n = 31623, the same sweep on the CPU to n = 10^4 (same data, same seed), the report
# over both, then the GPU tests. Every stage is time-boxed and runs even if an earlier one failed.
#
# The device image has torch, JAX and CuPy but not array-api-compat or autograd. Before sending the
# tree, download their wheels into .whl/ (ignored by git) and name .whl in the tool's `carry`:
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps -d .whl array-api-compat autograd
# Results land in $OUT (or /tmp/gpu-check): log, bare.txt, gpu.csv, cpu.csv (+ .meta.json), report.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# the single-process stages (bare loop, tests) must not take 75% of the GPU at their first JAX array
export XLA_PYTHON_CLIENT_PREALLOCATE=false
{
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import sys, numpy, jax, torch; print(sys.version.split()[0], "numpy", numpy.__version__, "jax", jax.__version__, "torch", torch.__version__)'
status=0
stage() {  # stage SECONDS NAME COMMAND...: run one stage under a time limit, remember failures
  local limit=$1 name=$2; shift 2
  echo "=== $name (limit ${limit}s) ==="
  local start=$SECONDS
  timeout "$limit" "$@"; local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s ==="
  [ $rc -eq 0 ] || status=1
}
SWEEP=(--problems least_squares --tasks solve,eval --derivatives f,grad,hvp --repeats 3 --samples 5
       --solve-budget 60 --eval-budget 40 --overwrite --no-progress)

stage 60 "harness vs bare loop" $PY scripts/gpu_bare_loop.py
stage 120 "CUDA sweep" $PY -m bench run --devices cuda --backends jax,torch --n 100,1000,10000,31623 \
  "${SWEEP[@]}" --out "$OUT/gpu.csv"
stage 90 "CPU sweep" $PY -m bench run --devices cpu --backends numpy,jax,torch --n 100,1000,10000 \
  "${SWEEP[@]}" --out "$OUT/cpu.csv"
stage 60 "report" $PY -m bench report --out /tmp/report "$OUT/gpu.csv" "$OUT/cpu.csv"
tar czf "$OUT/report.tgz" -C /tmp report 2>/dev/null
stage 30 "time to eps" $PY scripts/gpu_bare_loop.py --summary "$OUT/gpu.csv" "$OUT/cpu.csv"
# `-o addopts=`: the device image has no pytest-benchmark, whose option pyproject's addopts names
stage 150 "GPU tests" $PY -m pytest -q -p no:cacheprovider -o addopts= -ra --durations=5 tests/test_gpu.py
exit $status
} 2>&1 | tee "$OUT/log"  # a pipeline, not exec > >(tee): the shell waits for tee, the log is whole
exit "${PIPESTATUS[0]}"
