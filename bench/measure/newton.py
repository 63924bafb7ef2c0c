"""Newton-CG and Newton inside a worker: each HVP or Hessian variant and its gradient checked, then
the solves timed like the descent's."""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

import problems

from bench.core import precision
from bench.core.cell import Cell, base_row
from bench.measure.accuracy import precise
from bench.measure.checks import (
    Unchecked,
    check_result,
    checked_reference,
    compile_and_call,
    declared,
    describe,
    gate_fields,
)
from bench.measure.context import Context, Ready
from bench.measure.solve import timed_runs
from bench.measure.solvers import CURVATURE_ULPS, SOLVERS, STEPS, Run, newton_type, pieces, sparse_direction


def second_order_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """A Newton-type solver (bench.measure.solvers) to eps, one variant per HVP (newton-cg) or Hessian
    (newton) variant of each mode, each checked before it is timed, runs interleaved in rounds.

    Once per cell (first part): every variant compiled and called once at the evaluation point and
    checked against the other mode's first result, as in eval; the mode's gradient (its first
    value_and_grad, which the loop calls) checked the same way; the mode's evaluate and trial pieces
    compiled once, each variant's own piece (cg_step or direction) once; then one outer iteration,
    untimed, as a warm-up. compile_s is the sum of the pieces' compiles where the framework compiles
    ahead of time (JAX), else the warm-up's excess over an iteration at the first timed run's pace.
    A later part re-warms each variant with one outer iteration. Rounds as for the descent.
    """
    b = ctx.backend
    problem = problems.get(cell.problem)
    inst, data, x, v, _, _, x0 = ctx.instance(cell)
    if inst.f_star is None:
        yield "rows", [base_row(cell, mode="", variant="", status="skipped",
                                message="no known minimum f* to run to (see the problem's docstring)")]
        return
    kind = SOLVERS[cell.derivative].kind
    args = (x, v, data) if problems.KINDS[kind].takes_direction else (x, data)
    variants, refused = declared(cell, b, [(mode, name, fn) for mode in cell.modes
                                           for name, fn in b.functions(problem, mode).get(kind, {}).items()])
    if refused:
        yield "rows", refused
    fresh = [(mode, name, fn) for mode, name, fn in variants if (cell.key, mode, name) not in ctx.ready]
    functions = {(mode, name): fn for mode, name, fn in variants}  # as the backend gives them (JAX's jitted)
    steps = [b.asarray(np.asarray(t, dtype=cell.dtype), cell.device) for t in STEPS]
    b.sync(steps)
    firsts = {}
    for mode, variant, fn in fresh:
        yield "now", f"compiling and calling {mode}/{variant}"
        ctx.ready[cell.key, mode, variant] = None  # until it is checked, compiled and warmed
        first = compile_and_call(cell, ctx, fn, args, base_row(cell, mode=mode, variant=variant))
        if isinstance(first, dict):
            yield "rows", [first]
        else:
            firsts[mode, variant] = first
    outputs = {key: first[-1] for key, first in firsts.items()}
    shared = {}  # mode -> (evaluate, trial, their compile_s, gradient's rel_err), or the failure message
    for mode in dict.fromkeys(m for m, _ in firsts):
        yield "now", f"compiling and checking {mode}'s gradient"
        shared[mode] = _mode_pieces(cell, ctx, mode, kind, steps)
    references = {}
    gate = precise(cell, ctx, kind) if firsts else None
    for (mode, variant), first in firsts.items():
        row = base_row(cell, mode=mode, variant=variant)
        if mode not in references:
            try:
                references[mode] = checked_reference(cell, ctx, mode, kind, outputs)
            except Unchecked as exc:
                references[mode] = exc
        if isinstance(references[mode], Unchecked):
            yield "rows", [dict(row, status="skipped", message=str(references[mode]))]
            continue
        failed = check_result(row, first[-1], references[mode], cell, gate)
        if failed:
            yield "rows", [dict(failed, message=f"{kind} {failed['message']}")]
            continue
        if isinstance(shared[mode], dict):
            yield "rows", [dict(row, **shared[mode])]
            continue
        evaluate, trial, shared_compile_s, _ = shared[mode]
        yield "now", f"compiling and warming {mode}/{variant}"
        try:
            g, values = evaluate(x, data)
            if kind == "sparse_hess":  # the variant compiled once (firsts), the solve on the host
                name, compiled, compile_s = "direction", sparse_direction(
                    first[0], problem.sparsity(cell.n), b, cell.device), first[1]
            else:
                name, piece = next((k, p) for k, p in pieces(kind, None, functions[mode, variant]).items()
                                   if k not in ("evaluate", "trial"))
                example = (x, g, x, x, x, values[1], data) if kind == "hvp" else (x, g, data)
                compiled, compile_s = b.compile(b.fuse(piece), example)
            fns = {"evaluate": evaluate, "trial": trial, name: compiled}
            run = _newton_runner(cell, b, kind, fns, x0, data, steps, inst.f_star)
            start = time.perf_counter()
            run(1)
            first_s = time.perf_counter() - start
        except Exception as exc:
            yield "rows", [dict(row, status="error", message=describe(exc))]
            continue
        compile_s = None if compile_s is None else compile_s + shared_compile_s
        ctx.ready[cell.key, mode, variant] = Ready(fns, 1, compile_s, first_s, row["rel_err"], gate=gate_fields(row))
    del firsts, outputs
    runs = {}
    for mode, variant, _ in variants:
        ready = ctx.ready[cell.key, mode, variant]
        if ready is None:
            continue  # failed, unchecked or wrong: its row says why, in the part that found it
        run = _newton_runner(cell, b, kind, ready.fn, x0, data, steps, inst.f_star)
        if not any(f[:2] == (mode, variant) for f in fresh):  # prepared in an earlier part: a short re-warm
            yield "now", f"re-warming {mode}/{variant}"
            try:
                run(1)
            except Exception as exc:
                ctx.ready[cell.key, mode, variant] = None
                yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=describe(exc))]
                continue
        runs[mode, variant] = run
    yield from timed_runs(cell, ctx, runs, inst.f_star)


def _mode_pieces(cell: Cell, ctx: Context, mode: str, kind: str, steps: list):
    """The mode's evaluate and trial pieces, compiled, with their compile_s and the rel_err of the
    gradient they compute (checked against the other mode's gradient); or the fields of the row that
    says why its variants cannot run (wrong, nan, skipped, error)."""
    b = ctx.backend
    problem = problems.get(cell.problem)
    _, data, x, _, _, _, _ = ctx.instance(cell)
    try:
        (value_and_grad, *_) = b.value_and_grad(problem, mode).values()
        made = pieces(kind, value_and_grad, None)
        evaluate, evaluate_s = b.compile(b.fuse(made["evaluate"]), (x, data))
        trial, trial_s = b.compile(b.fuse(made["trial"]), (x, x, steps[0], data))
        gradient = b.to_numpy(evaluate(x, data)[0])
    except Exception as exc:
        return {"status": "error", "message": describe(exc)}
    try:
        reference = checked_reference(cell, ctx, mode, "grad")
    except Unchecked as exc:
        return {"status": "skipped", "message": f"the gradient is {exc}"}
    row = {}
    failed = check_result(row, gradient, reference, cell, precise(cell, ctx, "grad"))
    if failed:
        return {"status": failed["status"], "message": "the gradient the solver steps with: " + failed["message"],
                "rel_err": failed["rel_err"]}
    compile_s = None if evaluate_s is None else evaluate_s + trial_s
    return evaluate, trial, compile_s, row["rel_err"]


def _newton_runner(cell: Cell, b, kind: str, fns: dict, x0, data, steps: list, f_star: float):
    """run(max_iter) -> Run for one Newton-type variant."""
    budget = cell.time_budget_s / (cell.rounds + 1)

    def run(max_iter: int) -> Run:
        return newton_type(kind, fns, x0, data, read=b.to_numpy, steps=steps, f_star=f_star, eps=cell.eps,
                           max_iter=max_iter, max_time_s=budget,
                           curvature_eps=CURVATURE_ULPS * precision.machine_eps(cell.dtype))

    return run
