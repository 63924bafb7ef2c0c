"""The floating-point precisions a sweep runs in, and what each one sets: the solve's target, the gate's
tolerance and the precision its accuracy reference is computed in. A leaf: numpy only.

float64 is the default and the seed's: every float64 figure is what it was before the dtype axis. Where a
run asks for another dtype (--dtypes float64,float32), each derivative's result is also compared with the
same derivative computed in a higher precision on the same rounded inputs (bench.measure.accuracy).
"""
from __future__ import annotations

import math

import numpy as np

DTYPES = ("float64", "float32")
DEFAULT = ("float64",)

# The precision each dtype's accuracy reference is computed in: float64 for float32 (53 bits against 24),
# and x87's 80-bit long double for float64 (64 bits against 53: three decimal digits beyond float64's
# rounding, enough to measure it; numpy's linalg has no long double, so problems that call it have none).
HIGHER = {"float32": "float64", "float64": "longdouble"}

# The gate: analytic and autodiff agree to GATE_ULPS machine epsilons of the dtype, times the cell's
# measured condition (bench.measure.accuracy.condition: how far a relative perturbation of the inputs of one
# epsilon moves the exact derivative, in epsilons), times sqrt(dim) for the rounding a sum of dim terms
# accumulates as a random walk. No lower than the run's --rtol (1e-8 by default): float64's gate is what it
# was, since GATE_ULPS * eps64 * condition * sqrt(dim) stays below 1e-8 wherever it was measured
# (docs/precision.md has the measurement that set GATE_ULPS).
GATE_ULPS = 16.0


def machine_eps(dtype: str) -> float:
    """The distance from 1 to the next number of the dtype (numpy's finfo eps)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def solve_eps(eps: float, dtype: str) -> float:
    """The solve's target f - f* <= eps in `dtype`, from the float64 target `eps` (the seed's 1e-9): scaled by
    the square root of the precisions' ratio. f - f* ~ mu/2 |x - x*|^2, so this asks of x the same share of
    the dtype's digits that 1e-9 asks of float64 (x to ~4.5 of its 16 digits; in float32, eps = 2.3e-5, to
    ~2.3 of its 7), a target above the rounding of f itself (~eps_mach |f*|), which 1e-9 is not in float32."""
    return eps * math.sqrt(machine_eps(dtype) / machine_eps("float64"))


def gate_rtol(floor: float, dtype: str, condition: float, dim: int) -> float:
    """The relative difference between analytic and autodiff above which a cell is `wrong` (see GATE_ULPS)."""
    scaled = GATE_ULPS * machine_eps(dtype) * max(condition, 1.0) * math.sqrt(max(dim, 1))
    return max(floor, scaled) if math.isfinite(scaled) else floor


def itemsize(dtype: str) -> int:
    """Bytes per number: what a cost model's float64 bytes are scaled by (bench.analysis.floors)."""
    return np.dtype(dtype).itemsize
