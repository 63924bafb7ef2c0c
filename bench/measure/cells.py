"""The work inside one worker: validate, then time, one part of a cell. Failures become row statuses.

A cell is one (task, problem, n, backend, device, derivative); the sweep runs it in parts, one per
pass (bench.sweep.runner). A part yields a failing variant's row as soon as it fails and each round's
rows as the round ends, so that a timeout or crash in round k keeps rounds 0 ... k-1.
"""
from __future__ import annotations

import math
import os
import signal
import time
from typing import Any, Iterator

import problems

from bench.core.cell import Cell, base_row
from bench.measure.checks import describe
from bench.measure.context import Context
from bench.measure.evaluate import eval_cell
from bench.measure.faults import injected_fault
from bench.measure.newton import second_order_cell
from bench.measure.solve import solve_cell


def run_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """The cell's messages for its worker to pass on: ("rows", [row, ...]) as each batch ends (a
    failing variant, then one batch per round), and ("now", what) before each step, so that a
    timeout or crash can name the variant it caught."""
    fault, at_round = injected_fault(cell) or (None, None)
    try:
        if cell.source:
            problems.load(cell.source)
        if fault == "error":
            raise RuntimeError("injected fault")
        if fault == "nan":
            data = ctx.instance(cell).data
            for name, value in data.items():
                if name == "A":
                    data[name] = value * math.nan
        if cell.measure != "time":
            from bench.measure.counting import count_cell

            messages = count_cell(cell, ctx)
        elif cell.task == "eval":
            messages = eval_cell(cell, ctx)
        else:
            messages = solve_cell(cell, ctx) if cell.derivative == "gd" else second_order_cell(cell, ctx)
        batches = 0
        for kind, payload in messages:
            yield kind, payload
            batches += kind == "rows"
            if at_round is None:
                due = batches == 1 and kind == "rows"
            else:
                due = kind == "now" and cell.part == 0 and payload.endswith(f", round {at_round}")
            if due and fault == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            if due and fault == "hang":
                time.sleep(10**6)
    except Exception as exc:  # a failure before any variant ran: the whole cell is one error row
        yield "rows", [base_row(cell, mode="", variant="", status="error", message=describe(exc))]
