"""Fault injection for the robustness tests (NABLABENCH_FAULT)."""
from __future__ import annotations

import os

from bench.core.cell import Cell

FAULT_VARIABLE = "NABLABENCH_FAULT"
FAULT_KINDS = ("crash", "hang", "error", "nan")


def injected_fault(cell: Cell) -> tuple[str, int | None] | None:
    """Fault injection for the robustness tests: NABLABENCH_FAULT=KIND[@ROUND]:BACKEND:PROBLEM:N.

    crash: SIGKILL to this worker after the cell's first rows (as the OOM killer would), or, with
    @ROUND, as its first part is about to time round ROUND; hang: sleep forever there instead;
    error: raise; nan: the instance's data become NaN. Returns (kind, round or None).
    """
    spec = os.environ.get(FAULT_VARIABLE, "")
    for item in filter(None, spec.split(";")):
        kind, backend, problem, n = item.split(":")
        kind, _, round_ = kind.partition("@")
        if (backend, problem, int(n)) == (cell.backend, cell.problem, cell.n) and kind in FAULT_KINDS:
            return kind, int(round_) if round_ else None
    return None
