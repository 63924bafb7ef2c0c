"""The solve task inside a worker: gradient descent to eps, each variant checked first, runs interleaved."""
from __future__ import annotations

import math
import time
from typing import Any, Iterator

import numpy as np

import backends
import problems

from bench.core import defaults
from bench.core.cell import Cell, base_row
from bench.measure.accuracy import precise
from bench.measure.checks import (
    Unchecked,
    check_result,
    checked_reference,
    declared,
    describe,
    gate_fields,
    order_rng,
)
from bench.measure.context import Context, Ready
from bench.measure.gd import STATUS_CODES, descend
from bench.measure.solvers import Run
from bench.measure.timing import first_call, rounds

# solve: iterations of the untimed warm-up run (two steps: the first pays first-call costs, the second
# runs warm; five cost 2.3 s a size at n = 10^4 over the eleven variants, for nothing the timed runs need)
WARMUP_ITERATIONS = 1


def solve_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """Gradient descent to eps, each variant checked first, runs interleaved in rounds.

    Once per cell (first part): every step variant compiled (JAX ahead of time) and called once at
    the evaluation point, its update over the step size checked against the other mode's gradient
    (the other mode's first step variant, called the same way: what is timed is what is checked,
    and nothing is computed twice); then the whole-solve variants compiled (the JAX while-loop,
    checked by its mode's step: it steps with the same value_and_grad), and every variant warmed
    with a short run of WARMUP_ITERATIONS iterations. Where the framework has no ahead-of-time
    compiler, the compile time is the first step's excess over a step at the first timed run's
    pace. A later part re-warms each variant with one step. Each part takes at least
    `cell.rounds` runs of every variant, more (up to `cell.max_rounds`) while its runs are cheap,
    in rounds of a fresh seeded order; each round's rows go out as it ends.
    """
    b = ctx.backend
    problem = problems.get(cell.problem)
    inst, data, x, _, _, _, x0 = ctx.instance(cell)
    if inst.f_star is None or not math.isfinite(inst.lipschitz):
        yield "rows", [base_row(cell, mode="", variant="", status="skipped",
                                message="no minimum that fixed-step gradient descent is run to "
                                        "(see the problem's docstring)")]
        return
    needed = descent_iterations(problem, inst, cell.eps)
    if needed > cell.max_iter:
        yield "rows", [base_row(cell, mode="", variant="", status="skipped", message=(
            f"gradient descent at step 1/L would need about {needed:,} iterations here, past max_iter = "
            f"{cell.max_iter:,}: on a quadratic it contracts the gap by (1 - 1/kappa)^2 a step along the "
            f"flattest direction, kappa = L/mu = {inst.lipschitz / inst.strong_convexity:g}, so about "
            "kappa/2 ln((f(x0) - f*)/eps) steps"))]
        return
    # The step size lives where x does, converted once: a Python float would be copied to the
    # device on every jitted call (JAX), a transfer the eager frameworks do not pay.
    step_size, f_star = b.asarray(np.asarray(1.0 / inst.lipschitz, dtype=cell.dtype), cell.device), inst.f_star
    variants, refused = declared(cell, b, [
        (mode, name, name in solvers, fn) for mode in cell.modes
        for vgs, solvers in [(b.value_and_grad(problem, mode), b.solvers(problem, mode))]
        for name, fn in (*vgs.items(), *solvers.items())])
    if refused:
        yield "rows", refused
    fresh = [v for v in variants if (cell.key, v[0], v[1]) not in ctx.ready]
    steps = {}  # (mode, variant) -> (compiled step, compile_s, first step's seconds, gradient at x)
    for mode, variant, whole, vg in fresh:
        ctx.ready[cell.key, mode, variant] = None  # until it is checked and warmed
        if whole:
            continue
        yield "now", f"compiling and checking {mode}/{variant}"
        try:
            fn, compile_s = b.compile(b.step(vg), (x0, data, step_size))
            (_, x_next), first_s = first_call(lambda: fn(x, data, step_size), b.sync)
            # the update over the step size: the gradient this step applies (float64; the point
            # and the gradient are O(1), so the subtraction costs ~1e-16, far below rtol)
            gradient = (b.to_numpy(x) - b.to_numpy(x_next)) * inst.lipschitz
            steps[mode, variant] = (fn, compile_s, first_s, gradient)
        except backends.Infeasible as exc:  # what the framework cannot compile, in its words
            yield "rows", [base_row(cell, mode=mode, variant=variant, status="skipped", message=str(exc))]
        except Exception as exc:
            yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=describe(exc))]
    outputs = {key: step[-1] for key, step in steps.items()}
    checked = {}  # mode -> the rel_err of its first checked step variant (its whole-solve variants' check)
    gates = {}  # mode -> its first checked step variant's gate fields (bench.measure.checks.gate_fields), likewise
    gate = precise(cell, ctx, "grad") if steps else None
    for mode, variant, whole, fn in fresh:
        row = base_row(cell, mode=mode, variant=variant)
        if whole:
            if mode not in checked:
                yield "rows", [dict(row, status="skipped",
                                    message=f"unchecked, so not timed: no step variant of {mode} passed its check, "
                                            "and this one steps with its value_and_grad")]
                continue
            yield "now", f"compiling {mode}/{variant}"
            try:
                fn, compile_s = b.compile(fn, (x0, data, step_size, f_star, cell.eps, cell.max_iter))
            except Exception as exc:
                yield "rows", [dict(row, status="error", message=describe(exc))]
                continue
            rel_err, first_s = checked[mode], math.nan
        elif (mode, variant) in steps:
            fn, compile_s, first_s, gradient = steps[mode, variant]
            try:
                reference = checked_reference(cell, ctx, mode, "grad", outputs)
            except Unchecked as exc:
                yield "rows", [dict(row, status="skipped", message=str(exc))]
                continue
            failed = check_result(row, gradient, reference, cell, gate)
            if failed:
                yield "rows", [dict(failed, message="gradient " + failed["message"])]
                continue
            rel_err = row["rel_err"]
            checked.setdefault(mode, rel_err)
            gates.setdefault(mode, gate_fields(row))
        else:
            continue  # its step failed to compile or run: its error row is out
        yield "now", f"warming {mode}/{variant}"
        try:
            _runner(cell, b, whole, fn, x0, data, step_size, f_star)(WARMUP_ITERATIONS)
        except Exception as exc:
            yield "rows", [dict(row, status="error", message=describe(exc))]
            continue
        ctx.ready[cell.key, mode, variant] = Ready(fn, 1, compile_s, first_s, rel_err, gate=gates.get(mode, {}))
    del steps, outputs
    runs = {}  # (mode, variant) -> run(max_iter) -> (iterations, f, status)
    for mode, variant, whole, _ in variants:
        ready = ctx.ready[cell.key, mode, variant]
        if ready is None:
            continue  # failed, unchecked or wrong: its row says why, in the part that found it
        run = _runner(cell, b, whole, ready.fn, x0, data, step_size, f_star)
        if not any(v[:2] == (mode, variant) for v in fresh):  # prepared in an earlier part: a short re-warm
            yield "now", f"re-warming {mode}/{variant}"
            try:
                run(0)  # one step
            except Exception as exc:
                ctx.ready[cell.key, mode, variant] = None
                yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=describe(exc))]
                continue
        runs[mode, variant] = run
    yield from timed_runs(cell, ctx, runs, f_star)


def timed_runs(cell: Cell, ctx: Context, runs: dict, f_star: float) -> Iterator[tuple[str, Any]]:
    """A solve cell's timed runs: `runs` maps (mode, variant) to run(max_iter) -> Run. Rounds
    interleave the variants in a fresh seeded order each, as eval rounds do."""
    spent = 0.0  # seconds of timed runs in this part so far
    for r, order in rounds(cell.max_rounds, order_rng(cell), list(runs)):
        if not runs or (r >= cell.rounds and spent > defaults.CHEAP_S):
            break
        batch = []
        for position, key in enumerate(order):
            if key not in runs:
                continue  # failed in an earlier round: its error row is out, the others go on
            known = (cell.key, *key)
            ready = ctx.ready[known]
            row = base_row(cell, mode=key[0], variant=key[1], repeat=cell.first_round + r, position=position,
                           inner_loops=1, rel_err=ready.rel_err, **ready.gate)
            yield "now", f"running {key[0]}/{key[1]}, round {cell.first_round + r}"
            try:
                start = time.perf_counter()
                run = runs[key](cell.max_iter)
                elapsed = time.perf_counter() - start
            except Exception as exc:
                batch.append(dict(row, status="error", message=describe(exc)))
                del runs[key]
                ctx.ready[known] = None
                continue
            spent += elapsed
            ok = run.status == "ok"
            if ready.compile_s is None and ok:  # the first step's excess over a step at this pace
                ready = ctx.ready[known] = ready._replace(
                    compile_s=max(ready.first_s - elapsed / (run.iterations + 1), 0.0))
            batch.append(dict(
                row, time_s=elapsed if ok else math.nan, iterations=run.iterations, compile_s=ready.compile_s,
                f_final=run.f, gap=run.f - f_star, converged=ok, grad_calls=run.grad_calls,
                hvp_calls=run.hvp_calls, hess_calls=run.hess_calls,
                status=run.status, message="" if ok else run.why or _solve_message(run.status, cell)))
        if batch:
            yield "rows", batch


def descent_iterations(problem, inst, eps: float) -> int:
    """About how many steps gradient descent at step 1/L takes to eps where f's strong convexity mu
    is known: kappa/2 ln((f(x0) - f*)/eps), kappa = L/mu (the rate along a quadratic's flattest
    direction); 0 where mu is unknown."""
    if not math.isfinite(inst.strong_convexity):
        return 0
    gap = float(problem.f(inst.x0, inst.data)) - inst.f_star
    if gap <= eps:
        return 0
    return math.ceil(inst.lipschitz / inst.strong_convexity / 2 * math.log(gap / eps))



def _runner(cell: Cell, b, whole: bool, fn, x0, data, step_size, f_star):
    """run(max_iter) -> (iterations, f at the last iterate, status) for one variant."""
    if whole:
        def run(max_iter: int) -> Run:
            iterations, value, code = fn(x0, data, step_size, f_star, cell.eps, max_iter)
            b.sync(value)
            return Run(int(iterations), b.to_float(value), STATUS_CODES.get(int(code), "error"), int(iterations) + 1)

        return run
    budget = cell.time_budget_s / (cell.rounds + 1)

    def run(max_iter: int) -> Run:
        iterations, value, status = descend(lambda xk: fn(xk, data, step_size), x0, to_float=b.to_float,
                                            f_star=f_star, eps=cell.eps, max_iter=max_iter, max_time_s=budget)
        return Run(iterations, value, status, iterations + 1)

    return run


def _solve_message(status: str, cell: Cell) -> str:
    return {
        "not_converged": f"no convergence to eps={cell.eps:g} in {cell.max_iter} iterations",
        "diverged": "f grew past the divergence bound",
        "nan": "f became NaN or Inf",
        "timeout": "run exceeded its share of the cell's time budget",
    }.get(status, status)
