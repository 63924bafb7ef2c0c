"""The progress bar's ETA learns from the parts already done, per task and backend."""
from __future__ import annotations

import pytest

from bench.cells import Cell
from bench.runner import Eta, estimated_seconds


def _cell(task: str, backend: str, n: int) -> Cell:
    return Cell(task=task, problem="least_squares", n=n, backend=backend, device="cpu",
                derivative="gd" if task == "solve" else "grad", modes=("analytic", "autodiff"))


def test_eta_scales_each_task_by_what_its_own_parts_took():
    solve = [_cell("solve", "numpy", n) for n in (3000, 5000, 10000)]
    evals = [_cell("eval", "numpy", n) for n in (10000, 10000)]
    eta = Eta(solve + evals)
    prior = sum(map(estimated_seconds, solve + evals))
    assert eta.seconds_left() == pytest.approx(prior)
    assert min(map(estimated_seconds, solve[:2] + evals[:1])) > 1.0  # enough to learn from (Eta trusts > 1 s)
    eta.done(solve[0], 3 * estimated_seconds(solve[0]))  # the solve ran 3x slower than its model
    eta.done(solve[1], 3 * estimated_seconds(solve[1]))
    left_solve, left_eval = estimated_seconds(solve[2]), sum(map(estimated_seconds, evals))
    # the solve's remaining part is scaled by 3, the eval parts (another model) are not
    assert eta.seconds_left() == pytest.approx(3 * left_solve + left_eval)
    eta.done(evals[0], 0.5 * estimated_seconds(evals[0]))
    assert eta.seconds_left() == pytest.approx(3 * left_solve + 0.5 * estimated_seconds(evals[1]))
    eta.done(solve[2], None)  # skipped: nothing learned, nothing left
    assert eta.seconds_left() == pytest.approx(0.5 * estimated_seconds(evals[1]))
