#!/usr/bin/env bash
# An A/B between two releases of JAX (docs/ci.md, "A/B runs"): a second environment with jax==OLD and the
# libraries the workers import at the pins of constraints.txt, then `nablabench ab` of that interpreter
# (base) against the project's own (.venv, the pinned jax: new), JAX's cells only.
#
#   bash scripts/ab_env.sh [OLD=0.9.2] [extra nablabench ab options, e.g. --preset ci --passes 10]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:-0.9.2}
shift || true
VENV=.venv-jax-$OLD
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
pin() { grep -E "^$1==" constraints.txt; }
"$VENV/bin/python" -m pip install --quiet "jax==$OLD" "jaxlib==$OLD" "$(pin numpy)" "$(pin scipy)" \
    "$(pin array-api-compat)" "$(pin threadpoolctl)" "$(pin ml_dtypes)" psutil cloudpickle
exec .venv/bin/python -m bench ab "python:$VENV/bin/python" "python:.venv/bin/python" --backends jax \
    --out "results/ab-jax-$OLD.csv" --report "reports/ab-jax-$OLD" "$@"
