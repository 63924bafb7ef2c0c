"""The cell: the unit of work a worker runs, a run resumes and a failure blocks the larger sizes of.

The parent (the sweep) plans and records cells with this record alone, without loading a framework.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core import defaults
from bench.core.schema import KEY


@dataclass(frozen=True)
class Cell:
    task: str  # "eval" or "solve"
    problem: str
    n: int
    backend: str
    device: str
    derivative: str  # f, grad, hess, hvp, jac, dk; "gd" for solve
    modes: tuple[str, ...]
    source: str | bytes = ""  # how a worker loads the problem (problems.load): "" built-in, a spec, a pickled record
    part: int = 0  # which pass of the sweep runs this part of the cell
    first_round: int = 0  # the rounds this part takes are numbered from here
    seed: int = defaults.SEED
    # eval: rounds this part takes at least (one sample of every variant each); solve: runs of each variant
    rounds: int = defaults.ROUNDS
    # ... and at most: a part takes more while a variant's within-pass standard error is above its
    # `target` (eval), or while its runs are cheap (solve)
    max_rounds: int = defaults.MAX_ROUNDS
    target: float = defaults.TARGET  # the interval half-width its planned passes aim at (bench.core.stopping)
    passes: int = defaults.PASSES  # the cell's parts: at least this many passes (bench.sweep.runner.parts) ...
    max_passes: int = defaults.MAX_PASSES  # ... and more, up to this many, as its first pass plans
    repeats: int = defaults.REPEATS  # solve: runs of each variant over the first `passes` passes, at least
    min_sample_s: float = defaults.SAMPLE_TIME_S
    eps: float = defaults.EPS
    max_iter: int = defaults.MAX_ITER
    time_budget_s: float = defaults.SOLVE_BUDGET_S
    rtol: float = defaults.RTOL
    measure: str = "time"  # or "instructions", "cycles": counted under callgrind (bench.measure.counting)
    dtype: str = "float64"  # the floating-point precision of its data and results (bench.core.precision)
    # measure each variant's error against the derivative computed in a higher precision on the same rounded
    # inputs, and gate analytic against autodiff at a tolerance from the dtype and the measured condition
    # (bench.measure.accuracy); set where a run asks for a dtype beside float64
    accuracy: bool = False
    side: str = ""  # an A/B run (bench.ab): which side's code and interpreter its worker runs; "" otherwise

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in KEY)


def base_row(cell: Cell, **values) -> dict:
    row = {
        "task": cell.task, "problem": cell.problem, "n": cell.n, "backend": cell.backend,
        "device": cell.device, "dtype": cell.dtype, "derivative": cell.derivative, "repeat": cell.first_round,
        "position": 0, "part": cell.part, "status": "ok", "message": "",
        "eps": cell.eps if cell.task == "solve" else None,
    }
    row.update(values)
    return row
