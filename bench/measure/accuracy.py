"""A derivative's accuracy, measured: the same derivative computed in a higher precision on the same rounded
inputs, and the cell's condition, which sets the gate's tolerance in its dtype (bench.core.precision).

Where a run asks for a dtype beside float64 (`Cell.accuracy`), each cell computes once, in its first part:
- the reference: the problem's own formula for the kind, in precision.HIGHER[dtype] (float64 for float32,
  long double for float64), at the cell's inputs as they are in its dtype (x, v and the data rounded to it),
  so that what it measures of a variant is the rounding of its computation, not of its inputs;
- the condition: how far the same higher-precision derivative moves when every input is moved by one machine
  epsilon of the dtype, relatively, with seeded random signs, in epsilons. A computation that is backward
  stable errs by about this much (times the length of its sums' rounding walk).
Each variant's `precise_err` is its relative error against the reference, computed in the reference's
precision. Analytic and autodiff are both measured against the same reference, so that the report can say
which one loses digits.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import problems

from bench.core import precision
from bench.core.cell import Cell
from bench.measure.context import Context


class Precise(NamedTuple):
    """What a cell's variants are measured and gated against."""

    reference: np.ndarray | None  # the derivative in the higher precision; None where it has none (why)
    condition: float  # nan where the reference could not be computed
    rtol: float  # the gate's tolerance for this cell (precision.gate_rtol)
    why: str = ""


def precise(cell: Cell, ctx: Context, kind: str) -> Precise:
    """The cell's reference, condition and gate for derivative `kind`; the run's --rtol alone where the
    accuracy is not measured (a float64-only run: every figure as before the dtype axis)."""
    problem = problems.get(cell.problem)
    dim = problem.dim(cell.n)
    if not cell.accuracy:
        return Precise(None, math.nan, cell.rtol)
    inst, _, _, _, x_np, v_np, _ = ctx.instance(cell)
    higher = np.dtype(precision.HIGHER[cell.dtype])
    fn = getattr(problem, kind)
    takes_direction = problems.KINDS[kind].takes_direction
    rng = np.random.default_rng([cell.seed, cell.n, 1_000_003])
    delta = precision.machine_eps(cell.dtype)

    def lifted(a, moved: bool):
        if not (isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)):
            return a
        a = a.astype(higher)
        return a * (1 + delta * rng.choice(np.array([-1, 1], dtype=higher), a.shape)) if moved else a

    def evaluate(moved: bool) -> np.ndarray:
        data = {k: lifted(v, moved) for k, v in inst.data.items()}
        x = lifted(x_np, moved)
        out = np.asarray(fn(x, lifted(v_np, moved), data) if takes_direction else fn(x, data))
        if out.dtype != higher:
            raise TypeError(f"the formula computed in {out.dtype}, not {higher}")
        return out

    try:
        reference = evaluate(moved=False)
        condition = error(evaluate(moved=True), reference) / delta
    except Exception as exc:
        why = f"no {higher.name} reference for {kind}: {type(exc).__name__}: {exc}"[:300]
        return Precise(None, math.nan, precision.gate_rtol(cell.rtol, cell.dtype, 1.0, dim), why)
    return Precise(reference, condition, precision.gate_rtol(cell.rtol, cell.dtype, condition, dim))


def error(out, reference: np.ndarray) -> float:
    """||out - reference|| / ||reference||, in the reference's precision (the absolute error where the
    reference is exactly zero); inf where the shapes differ in size."""
    out = np.asarray(out)
    if out.size != reference.size:
        return math.inf
    difference = np.reshape(out, reference.shape).astype(reference.dtype) - reference
    scale = np.linalg.norm(reference.ravel())
    return float(np.linalg.norm(difference.ravel()) / (scale if scale > 0 else 1.0))
