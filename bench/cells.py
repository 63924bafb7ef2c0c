"""The work inside one worker: validate, then time, one part of a cell. Failures become row statuses.

A cell is one (task, problem, n, backend, device, derivative); the sweep runs it in parts, one per
pass (bench.runner). A part yields a failing variant's row as soon as it fails and each round's
rows as the round ends, so that a timeout or crash in round k keeps rounds 0 ... k-1.
"""
from __future__ import annotations

import math
import os
import signal
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import numpy as np

import backends
import problems

from . import defaults
from .gd import STATUS_CODES, descend
from .solvers import SOLVERS, STEPS, Run, newton_type, pieces
from .intervals import within_pass_se
from .memory import PeakMemory
from .schema import KEY
from .timing import calibrate, first_call, rounds, sample, sample_throughput


# eval: a first call this long (seconds) lasts a sample whatever its compile or first-call costs were
# (torch.func's first call in a process took 0.8 s): such a variant is not calibrated, one call a sample
LONG_CALL_S = 1.0
# solve: iterations of the untimed warm-up run (two steps: the first pays first-call costs, the second
# runs warm; five cost 2.3 s a size at n = 10^4 over the eleven variants, for nothing the timed runs need)
WARMUP_ITERATIONS = 1


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
    target: float = defaults.TARGET  # the interval half-width a cell stops at (bench.intervals)
    passes: int = defaults.PASSES  # the cell's parts: at least this many passes (bench.runner.parts) ...
    max_passes: int = defaults.MAX_PASSES  # ... and more, up to this many, while its interval is wider than target
    repeats: int = defaults.REPEATS  # solve: runs of each variant over the first `passes` passes, at least
    min_sample_s: float = defaults.SAMPLE_TIME_S
    eps: float = defaults.EPS
    max_iter: int = defaults.MAX_ITER
    time_budget_s: float = defaults.SOLVE_BUDGET_S
    rtol: float = defaults.RTOL
    measure: str = "time"  # or "instructions", "cycles": counted under callgrind (bench.counting)

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in KEY)


class Prepared(NamedTuple):
    """One instance as a backend sees it: data, evaluation point x and direction v, and x0."""

    inst: problems.Instance
    data: dict
    x: Any
    v: Any
    x_np: np.ndarray
    v_np: np.ndarray
    x0: Any


class Ready(NamedTuple):
    """What a variant's first part of a cell measured once, kept by its worker for the later parts:
    they re-warm it briefly and take their rounds, without a second check, compile or calibration."""

    fn: Any  # what is called: the compiled function (JAX), or the variant itself
    inner_loops: int  # calls per sample (eval); 1 for a solve
    compile_s: float | None  # None until known (a framework without AOT: its first call's excess)
    first_s: float  # the first call (eval) or the warm-up run (solve), compile included
    rel_err: float
    peak_mem_bytes: float = math.nan


@dataclass
class Context:
    """A worker's state: its backend, the one instance it keeps converted (the last n used), and
    each variant it has prepared (`Ready`, or None where the variant failed: its row is out)."""

    backend: backends.Backend
    cached: dict = field(default_factory=dict)
    ready: dict = field(default_factory=dict)  # (cell key, mode, variant) -> Ready | None

    def instance(self, cell: Cell) -> Prepared:
        key = (cell.problem, cell.n, cell.seed, cell.device)
        if key not in self.cached:
            self.cached.clear()  # free the previous size's arrays before allocating the next
            inst = problems.get(cell.problem).instance(cell.n, seed=cell.seed)
            to = lambda a: self.backend.asarray(a, cell.device)  # noqa: E731
            data = {k: to(v) if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
            x, v = evaluation_point(cell.n, cell.seed, cell.problem)
            prepared = Prepared(inst, data, to(x), to(v), x, v, to(inst.x0))
            # Copies to a device (JAX's even on the CPU) are asynchronous: finish them here, so no
            # timed call and no variant's memory peak pays for them.
            self.backend.sync(prepared[1:4] + prepared[6:])
            self.cached[key] = prepared
        return self.cached[key]


def evaluation_point(n: int, seed: int, problem: str = "least_squares") -> tuple[np.ndarray, np.ndarray]:
    """The problem's seeded evaluation point and HVP direction (inside its domain)."""
    return problems.get(problem).evaluation_point(n, seed)


def base_row(cell: Cell, **values) -> dict:
    row = {
        "task": cell.task, "problem": cell.problem, "n": cell.n, "backend": cell.backend,
        "device": cell.device, "dtype": "float64", "derivative": cell.derivative, "repeat": cell.first_round,
        "position": 0, "part": cell.part, "status": "ok", "message": "",
    }
    row.update(values)
    return row


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
            from .counting import count_cell

            messages = count_cell(cell, ctx)
        elif cell.task == "eval":
            messages = _eval_cell(cell, ctx)
        else:
            messages = _solve_cell(cell, ctx) if cell.derivative == "gd" else _second_order_cell(cell, ctx)
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
        yield "rows", [base_row(cell, mode="", variant="", status="error", message=_describe(exc))]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError: out of memory"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def _call(derivative: str, fn, x, v, data):
    return fn(x, v, data) if problems.KINDS[derivative].takes_direction else fn(x, data)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """||out - ref|| / ||ref||; the absolute error where either side is exactly zero (a zero
    Hessian is exact in one mode and roundoff, ~1e-16, in the other: eig_sum through eigvalsh)."""
    out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape and out.size == ref.size:
        out = out.reshape(ref.shape)  # an autodiff Hessian of f(X) is (n, n, n, n); ours is over vec(X)
    if out.shape != ref.shape:
        return math.inf
    scale = np.linalg.norm(ref)
    exact_zero = not np.any(out) or not np.any(ref)
    return float(np.linalg.norm(out - ref) / (1.0 if exact_zero else max(scale, 1e-300)))


class Unchecked(Exception):
    """No independent result to check a variant against (the other mode failed or declined)."""


def _reference(cell: Cell, ctx: Context, mode: str, derivative: str, outputs: dict | None = None):
    """The independent result each mode is checked against: analytic vs autodiff, always.

    Analytic is checked against this backend's first autodiff variant (an analytic-only backend
    against the autodiff of the backend its record names: numpy against autograd); autodiff
    against this backend's analytic formula. f is checked against numpy's f. `outputs`: the
    results the cell's variants already gave, {(mode, variant): result}, in the backend's order;
    the other mode's first one is the reference, so that nothing is computed twice (JAX compiled
    every reference a second time, through jit, before).
    """
    b = ctx.backend
    inst, data, x, v, x_np, v_np, _ = ctx.instance(cell)
    problem = problems.get(cell.problem)
    if derivative == "f":
        return problem.f(x_np, inst.data)
    other = "autodiff" if mode == "analytic" else "analytic"
    known = [out for (m, _), out in (outputs or {}).items() if m == other]
    if known:
        return known[0]
    if other in b.modes and derivative in b.functions(problem, other):
        return b.to_numpy(_first_feasible(b.functions(problem, other)[derivative], derivative, x, v, data))
    if not b.checked_by:
        raise backends.Infeasible(f"{b.name} has no {other} {derivative} for {cell.problem}, and its record names no "
                                  "backend to check against (checked_by)")
    host = backends.get(b.checked_by)
    return np.asarray(_first_feasible(host.functions(problem, other)[derivative], derivative, x_np, v_np, inst.data))


def _checked_reference(cell: Cell, ctx: Context, mode: str, derivative: str, outputs: dict | None = None):
    """`_reference`, or Unchecked saying why there is none (then the mode is not timed)."""
    try:
        return _reference(cell, ctx, mode, derivative, outputs)
    except backends.Infeasible as exc:
        raise Unchecked(f"unchecked, so not timed: {exc}") from None
    except Exception as exc:
        raise Unchecked(f"unchecked, so not timed: the result to check against failed: {_describe(exc)}") from None


def _first_feasible(variants: dict, derivative: str, x, v, data):
    """The first variant's result that the variant can afford (see backends.Infeasible)."""
    declined = []
    for fn in variants.values():
        try:
            return _call(derivative, fn, x, v, data)
        except backends.Infeasible as exc:
            declined.append(str(exc))
    raise backends.Infeasible("every variant of the other mode declined: " + "; ".join(declined))


def order_rng(cell: Cell) -> np.random.Generator:
    """The seeded source of a cell's round orders: the run's seed, the cell's key and its part."""
    return np.random.default_rng([cell.seed, zlib.crc32(repr(cell.key).encode()), cell.first_round])


def _check(row: dict, out, reference, rtol: float) -> dict | None:
    """rel_err into `row`; a `nan` or `wrong` row where the variant must not be timed."""
    row["rel_err"] = relative_error(out, reference)
    if not np.isfinite(row["rel_err"]):
        return dict(row, status="nan", message="non-finite derivative or mismatched shape")
    if row["rel_err"] > rtol:
        return dict(row, status="wrong", message=f"relative error {row['rel_err']:.2e} > rtol {rtol:g}")
    return None


def _eval_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """Check every variant, then time them all in interleaved rounds.

    Once per cell, in its first part (and again only if its worker was restarted): each variant
    compiled (JAX ahead of time) and called once, its peak memory covering exactly these; then each
    checked against the other mode's first result, and calibrated. A later part re-warms each
    variant with one untimed sample. Then the part's rounds, each taking one sample of every checked
    variant in a fresh seeded random order (`position` records it), so that a ratio within one round
    pairs samples taken moments apart: at least `cell.rounds`, and more, up to `cell.max_rounds`,
    while a variant's within-pass standard error (of its log time) exceeds the target and the
    rounds are cheap. Each round's rows go out as it ends.
    """
    b = ctx.backend
    problem = problems.get(cell.problem)
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    variants = [(mode, variant, fn) for mode in cell.modes
                for variant, fn in b.functions(problem, mode).get(cell.derivative, {}).items()]
    fresh = [(mode, variant, fn) for mode, variant, fn in variants if (cell.key, mode, variant) not in ctx.ready]
    firsts = {}  # (mode, variant) -> (compiled, compile_s, first call's seconds, peak bytes, result)
    for mode, variant, fn in fresh:
        yield "now", f"compiling and calling {mode}/{variant}"
        ctx.ready[cell.key, mode, variant] = None  # until it is checked and calibrated
        first = _first(cell, ctx, fn, args, base_row(cell, mode=mode, variant=variant))
        if isinstance(first, dict):
            yield "rows", [first]
        else:
            firsts[mode, variant] = first
    references = {}
    outputs = {key: first[-1] for key, first in firsts.items()}
    for (mode, variant), first in firsts.items():
        yield "now", f"checking and calibrating {mode}/{variant}"
        if mode not in references:
            try:
                references[mode] = _checked_reference(cell, ctx, mode, cell.derivative, outputs)
            except Unchecked as exc:
                references[mode] = exc
        row = base_row(cell, mode=mode, variant=variant)
        if isinstance(references[mode], Unchecked):
            yield "rows", [dict(row, status="skipped", message=str(references[mode]))]
            continue
        failure = _ready(cell, ctx, (mode, variant), first, references[mode], row)
        if failure is not None:
            yield "rows", [failure]
    del firsts, outputs, references
    timed = {}  # (mode, variant) -> (call, Ready)
    for mode, variant, _ in variants:
        ready = ctx.ready[cell.key, mode, variant]
        if ready is None:
            continue  # failed, declined or unchecked: its row says why, in the part that found it
        call = lambda fn=ready.fn: fn(*args)  # noqa: E731
        if not any(f[:2] == (mode, variant) for f in fresh):  # prepared in an earlier part: a short re-warm
            yield "now", f"re-warming {mode}/{variant}"
            sample(call, b.sync, ready.inner_loops)
        timed[mode, variant] = (call, ready)
    if not timed:
        return
    deadline = time.perf_counter() + cell.time_budget_s / 2
    accelerator = cell.device != "cpu"
    # a pass median whose own error is within the target: more rounds would add little to the interval
    # over passes, whose spread is mostly between passes (bench.intervals)
    enough = math.log1p(cell.target)
    times = {key: [] for key in timed}
    spent = 0.0  # seconds of timed rounds in this part so far
    for r, order in rounds(cell.max_rounds, order_rng(cell), list(timed)):
        if r >= cell.rounds and (r < 2 or spent > defaults.CHEAP_S
                                 or all(within_pass_se(t) <= enough for t in times.values())):
            break  # (one round gives no within-pass spread: a part asked for one takes one)
        if r >= 1 and time.perf_counter() > deadline:
            break  # a slow cell keeps the rounds it finished within its budget
        batch = []
        for position, key in enumerate(order):
            call, ready = timed[key]
            yield "now", f"timing {key[0]}/{key[1]}, round {cell.first_round + r}"
            latency = sample(call, b.sync, ready.inner_loops)
            # on a GPU, also the same calls back to back with one synchronisation: throughput
            throughput = sample_throughput(call, b.sync, ready.inner_loops) if accelerator else math.nan
            if ready.compile_s is None:  # a long call, not calibrated: its first call's excess over this one
                ready = ctx.ready[(cell.key, *key)] = ready._replace(compile_s=max(ready.first_s - latency, 0.0))
                timed[key] = (call, ready)
            times[key].append(latency)
            spent += (latency + (throughput if accelerator else 0.0)) * ready.inner_loops
            batch.append(base_row(cell, mode=key[0], variant=key[1], repeat=cell.first_round + r, position=position,
                                  time_s=latency, throughput_s=throughput, inner_loops=ready.inner_loops,
                                  compile_s=ready.compile_s, rel_err=ready.rel_err,
                                  peak_mem_bytes=ready.peak_mem_bytes))
        yield "rows", batch


def _first(cell: Cell, ctx: Context, fn, args, row: dict):
    """Compile one variant and call it once: (compiled, compile_s, first call's seconds, peak
    bytes, its result as numpy), or its failure row (skipped where it declines, else error)."""
    b = ctx.backend
    memory = PeakMemory(cell.device, b.gpu_peak_memory(cell.device))
    memory.reset()
    try:
        compiled, compile_s = b.compile(fn, args)
        out, first_s = first_call(lambda: compiled(*args), b.sync)
        planned = cell.device != "cpu" and b.planned_bytes is not None
        peak = b.planned_bytes(compiled) if planned else memory.extra_bytes()
        return compiled, compile_s, first_s, peak, b.to_numpy(out)
    except backends.Infeasible as exc:
        return dict(row, status="skipped", message=str(exc))
    except Exception as exc:
        return dict(row, status="error", message=_describe(exc))


def _ready(cell: Cell, ctx: Context, key: tuple, first: tuple, reference, row: dict) -> dict | None:
    """Check a called variant against the other mode's result, calibrate it, and keep it in
    ctx.ready. Returns its failure row (wrong, nan, error), or None when it is ready."""
    b = ctx.backend
    compiled, compile_s, first_s, peak, out = first
    failed = _check(row, out, reference, cell.rtol)
    if failed:
        return failed
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    call = lambda: compiled(*args)  # noqa: E731
    if first_s >= LONG_CALL_S:  # a call this long lasts a sample: calibrating it would cost one more
        loops, per_call = 1, None  # (and its compile estimate waits for its first timed sample)
    else:
        try:
            loops, per_call = calibrate(call, sync=b.sync, min_sample_s=cell.min_sample_s,
                                        warmup_s=2 * cell.min_sample_s)
        except Exception as exc:
            return dict(row, status="error", message=_describe(exc))
    if compile_s is None and per_call is not None:  # no ahead-of-time compiler: the first call's excess
        compile_s = max(first_s - per_call, 0.0)
    ctx.ready[(cell.key, *key)] = Ready(compiled, loops, compile_s, first_s, row["rel_err"], peak)
    return None


def _solve_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
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
                                message="no minimum that fixed-step gradient descent is run to (see the problem's docstring)")]
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
    step_size, f_star = b.asarray(np.asarray(1.0 / inst.lipschitz), cell.device), inst.f_star
    variants = [(mode, name, name in solvers, fn) for mode in cell.modes
                for vgs, solvers in [(b.value_and_grad(problem, mode), b.solvers(problem, mode))]
                for name, fn in (*vgs.items(), *solvers.items())]
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
            yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=_describe(exc))]
    outputs = {key: step[-1] for key, step in steps.items()}
    checked = {}  # mode -> the rel_err of its first checked step variant (its whole-solve variants' check)
    for mode, variant, whole, fn in fresh:
        row = base_row(cell, mode=mode, variant=variant)
        if whole:
            if mode not in checked:
                yield "rows", [dict(row, status="skipped", message=f"unchecked, so not timed: no step variant of {mode} "
                                                                    "passed its check, and this one steps with its value_and_grad")]
                continue
            yield "now", f"compiling {mode}/{variant}"
            try:
                fn, compile_s = b.compile(fn, (x0, data, step_size, f_star, cell.eps, cell.max_iter))
            except Exception as exc:
                yield "rows", [dict(row, status="error", message=_describe(exc))]
                continue
            rel_err, first_s = checked[mode], math.nan
        elif (mode, variant) in steps:
            fn, compile_s, first_s, gradient = steps[mode, variant]
            try:
                reference = _checked_reference(cell, ctx, mode, "grad", outputs)
            except Unchecked as exc:
                yield "rows", [dict(row, status="skipped", message=str(exc))]
                continue
            failed = _check(row, gradient, reference, cell.rtol)
            if failed:
                yield "rows", [dict(failed, message="gradient " + failed["message"])]
                continue
            rel_err = row["rel_err"]
            checked.setdefault(mode, rel_err)
        else:
            continue  # its step failed to compile or run: its error row is out
        yield "now", f"warming {mode}/{variant}"
        try:
            _runner(cell, b, whole, fn, x0, data, step_size, f_star)(WARMUP_ITERATIONS)
        except Exception as exc:
            yield "rows", [dict(row, status="error", message=_describe(exc))]
            continue
        ctx.ready[cell.key, mode, variant] = Ready(fn, 1, compile_s, first_s, rel_err)
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
                yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=_describe(exc))]
                continue
        runs[mode, variant] = run
    yield from _timed_runs(cell, ctx, runs, f_star)


def _timed_runs(cell: Cell, ctx: Context, runs: dict, f_star: float) -> Iterator[tuple[str, Any]]:
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
                           inner_loops=1, rel_err=ready.rel_err)
            yield "now", f"running {key[0]}/{key[1]}, round {cell.first_round + r}"
            try:
                start = time.perf_counter()
                run = runs[key](cell.max_iter)
                elapsed = time.perf_counter() - start
            except Exception as exc:
                batch.append(dict(row, status="error", message=_describe(exc)))
                del runs[key]
                ctx.ready[known] = None
                continue
            spent += elapsed
            ok = run.status == "ok"
            if ready.compile_s is None and ok:  # the first step's excess over a step at this pace
                ready = ctx.ready[known] = ready._replace(compile_s=max(ready.first_s - elapsed / (run.iterations + 1), 0.0))
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


def _second_order_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """A Newton-type solver (bench.solvers) to eps, one variant per HVP (newton-cg) or Hessian
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
    variants = [(mode, name, fn) for mode in cell.modes for name, fn in b.functions(problem, mode).get(kind, {}).items()]
    fresh = [(mode, name, fn) for mode, name, fn in variants if (cell.key, mode, name) not in ctx.ready]
    functions = {(mode, name): fn for mode, name, fn in variants}  # as the backend gives them (JAX's jitted)
    steps = [b.asarray(np.asarray(t), cell.device) for t in STEPS]
    b.sync(steps)
    firsts = {}
    for mode, variant, fn in fresh:
        yield "now", f"compiling and calling {mode}/{variant}"
        ctx.ready[cell.key, mode, variant] = None  # until it is checked, compiled and warmed
        first = _first(cell, ctx, fn, args, base_row(cell, mode=mode, variant=variant))
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
    for (mode, variant), first in firsts.items():
        row = base_row(cell, mode=mode, variant=variant)
        if mode not in references:
            try:
                references[mode] = _checked_reference(cell, ctx, mode, kind, outputs)
            except Unchecked as exc:
                references[mode] = exc
        if isinstance(references[mode], Unchecked):
            yield "rows", [dict(row, status="skipped", message=str(references[mode]))]
            continue
        failed = _check(row, first[-1], references[mode], cell.rtol)
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
            yield "rows", [dict(row, status="error", message=_describe(exc))]
            continue
        compile_s = None if compile_s is None else compile_s + shared_compile_s
        ctx.ready[cell.key, mode, variant] = Ready(fns, 1, compile_s, first_s, row["rel_err"])
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
                yield "rows", [base_row(cell, mode=mode, variant=variant, status="error", message=_describe(exc))]
                continue
        runs[mode, variant] = run
    yield from _timed_runs(cell, ctx, runs, inst.f_star)


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
        return {"status": "error", "message": _describe(exc)}
    try:
        reference = _checked_reference(cell, ctx, mode, "grad")
    except Unchecked as exc:
        return {"status": "skipped", "message": f"the gradient is {exc}"}
    row = {}
    failed = _check(row, gradient, reference, cell.rtol)
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
                           max_iter=max_iter, max_time_s=budget)

    return run


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
