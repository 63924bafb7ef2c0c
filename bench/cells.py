"""The work inside one worker: validate, then time, one cell. Failures become row statuses.

A cell is one (task, problem, n, backend, device, derivative); it yields one list of rows per
(mode, variant) as each finishes, so that a crash later in the cell loses nothing already done.
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
from .memory import PeakMemory
from .timing import calibrate, first_call, rounds, sample, sample_throughput


# A cell's identity: the unit a worker runs, a run resumes and a failure blocks larger sizes of;
# and a variant's identity within it. Every table that groups results uses these.
KEY = ("task", "problem", "n", "backend", "device", "derivative")
VARIANT_KEY = KEY + ("mode", "variant")
WARMUP_ITERATIONS = 5  # solve: gradient steps of the untimed warm-up run of a loop we drive


@dataclass(frozen=True)
class Cell:
    task: str  # "eval" or "solve"
    problem: str
    n: int
    backend: str
    device: str
    derivative: str  # f, grad, hess, hvp, jac, dk; "gd" for solve
    modes: tuple[str, ...]
    source: str = ""  # how a worker loads the problem: "" built-in, else a spec (problems.load)
    part: int = 0  # which pass of the sweep runs this part of the cell's rounds
    first_round: int = 0  # the rounds this part takes are numbered from here
    seed: int = defaults.SEED
    samples: int = defaults.SAMPLES
    min_sample_s: float = defaults.SAMPLE_TIME_S
    repeats: int = defaults.REPEATS
    eps: float = defaults.EPS
    max_iter: int = defaults.MAX_ITER
    time_budget_s: float = defaults.SOLVE_BUDGET_S
    rtol: float = defaults.RTOL

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


@dataclass
class Context:
    """A worker's state: its backend and the one instance it keeps converted (the last n used)."""

    backend: backends.Backend
    cached: dict = field(default_factory=dict)

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


def injected_fault(cell: Cell) -> str | None:
    """Fault injection for the robustness tests: NABLABENCH_FAULT=KIND:BACKEND:PROBLEM:N.

    crash: SIGKILL to this worker after the cell's first rows (as the OOM killer would);
    hang: sleep forever after them; error: raise; nan: the instance's data become NaN.
    """
    spec = os.environ.get(FAULT_VARIABLE, "")
    for item in filter(None, spec.split(";")):
        kind, backend, problem, n = item.split(":")
        if (backend, problem, int(n)) == (cell.backend, cell.problem, cell.n) and kind in FAULT_KINDS:
            return kind
    return None


def run_cell(cell: Cell, ctx: Context) -> Iterator[list[dict]]:
    fault = injected_fault(cell)
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
        rows = _eval_cell(cell, ctx) if cell.task == "eval" else _solve_cell(cell, ctx)
        for i, batch in enumerate(rows):
            yield batch
            if i == 0 and fault == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            if i == 0 and fault == "hang":
                time.sleep(10**6)
    except Exception as exc:  # a failure before any variant ran: the whole cell is one error row
        yield [base_row(cell, mode="", variant="", status="error", message=_describe(exc))]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError: out of memory"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def _call(derivative: str, fn, x, v, data):
    return fn(x, v, data) if problems.KINDS[derivative].takes_direction else fn(x, data)


def _rel_err(out: np.ndarray, ref: np.ndarray) -> float:
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


def _reference(cell: Cell, ctx: Context, mode: str, derivative: str):
    """The independent result each mode is checked against: analytic vs autodiff, always.

    Analytic is checked against this backend's first autodiff variant (an analytic-only backend
    against the autodiff of the backend its record names: numpy against autograd); autodiff
    against this backend's analytic formula. f is checked against numpy's f.
    """
    b = ctx.backend
    inst, data, x, v, x_np, v_np, _ = ctx.instance(cell)
    problem = problems.get(cell.problem)
    if derivative == "f":
        return problem.f(x_np, inst.data)
    other = "autodiff" if mode == "analytic" else "analytic"
    if other in b.modes and derivative in b.functions(problem, other):
        return b.to_numpy(_first_feasible(b.functions(problem, other)[derivative], derivative, x, v, data))
    if not b.checked_by:
        raise backends.Infeasible(f"{b.name} has no {other} {derivative} for {cell.problem}, and its record names no "
                                  "backend to check against (checked_by)")
    host = backends.get(b.checked_by)
    return np.asarray(_first_feasible(host.functions(problem, other)[derivative], derivative, x_np, v_np, inst.data))


def _checked_reference(cell: Cell, ctx: Context, mode: str, derivative: str):
    """`_reference`, or Unchecked saying why there is none (then the mode is not timed)."""
    try:
        return _reference(cell, ctx, mode, derivative)
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
    row["rel_err"] = _rel_err(out, reference)
    if not np.isfinite(row["rel_err"]):
        return dict(row, status="nan", message="non-finite derivative or mismatched shape")
    if row["rel_err"] > rtol:
        return dict(row, status="wrong", message=f"relative error {row['rel_err']:.2e} > rtol {rtol:g}")
    return None


def _eval_cell(cell: Cell, ctx: Context) -> Iterator[list[dict]]:
    """Check every variant, then time them all in interleaved rounds.

    Per variant, apart: compile (JAX ahead of time), the first call, the check against the other
    mode, warm-up and calibration; its peak memory covers exactly these. Then `cell.samples`
    rounds, each taking one sample of every checked variant in a fresh seeded random order
    (`position` records it), so that a ratio within one round pairs samples taken moments apart.
    """
    b = ctx.backend
    problem = problems.get(cell.problem)
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    timed = {}  # (mode, variant) -> (call, row, first call's seconds)
    for mode in cell.modes:
        variants = b.functions(problem, mode).get(cell.derivative, {})
        if not variants:
            continue
        try:  # before any memory reset: the reference is no variant's cost
            reference = _checked_reference(cell, ctx, mode, cell.derivative)
        except Unchecked as exc:
            yield [base_row(cell, mode=mode, variant=name, status="skipped", message=str(exc)) for name in variants]
            continue
        for variant, fn in variants.items():
            row = base_row(cell, mode=mode, variant=variant)
            memory = PeakMemory(cell.device, b.gpu_peak_memory(cell.device))
            memory.reset()
            try:
                compiled, compile_s = b.compile(fn, args)
                call = lambda compiled=compiled: compiled(*args)  # noqa: E731
                out, first_s = first_call(call, b.sync)
                failed = _check(row, b.to_numpy(out), reference, cell.rtol)
                del out
                if failed:
                    yield [failed]
                    continue
                loops = calibrate(call, sync=b.sync, min_sample_s=cell.min_sample_s, warmup_s=5 * cell.min_sample_s)
                planned = cell.device != "cpu" and b.planned_bytes is not None
                row.update(inner_loops=loops, compile_s=compile_s,
                           peak_mem_bytes=b.planned_bytes(compiled) if planned else memory.extra_bytes())
                timed[mode, variant] = (call, row, first_s)
            except backends.Infeasible as exc:
                yield [dict(row, status="skipped", message=str(exc))]
            except Exception as exc:
                yield [dict(row, status="error", message=_describe(exc))]
    if not timed:
        return
    samples = {key: [] for key in timed}
    deadline = time.perf_counter() + cell.time_budget_s / 2
    accelerator = cell.device != "cpu"
    for r, order in rounds(cell.samples, order_rng(cell), list(timed)):
        if r >= 3 and time.perf_counter() > deadline:
            break  # a slow cell keeps the rounds it finished (at least three) within its budget
        for position, key in enumerate(order):
            call, row, _ = timed[key]
            latency = sample(call, b.sync, row["inner_loops"])
            # on a GPU, also the same calls back to back with one synchronisation: throughput
            throughput = sample_throughput(call, b.sync, row["inner_loops"]) if accelerator else math.nan
            samples[key].append(dict(repeat=cell.first_round + r, position=position, time_s=latency,
                                     throughput_s=throughput))
    for key, (_, row, first_s) in timed.items():
        if row["compile_s"] is None:  # no ahead-of-time compiler: first call minus steady state
            row["compile_s"] = max(first_s - float(np.median([s["time_s"] for s in samples[key]])), 0.0)
        yield [dict(row, **s) for s in samples[key]]


def _solve_cell(cell: Cell, ctx: Context) -> Iterator[list[dict]]:
    b = ctx.backend
    problem = problems.get(cell.problem)
    inst, data, x, v, x_np, _, x0 = ctx.instance(cell)
    if inst.f_star is None:
        yield [base_row(cell, mode="", variant="", status="skipped",
                        message="no minimum that fixed-step gradient descent is run to (see the problem's docstring)")]
        return
    # The step size lives where x does, converted once: a Python float would be copied to the
    # device on every jitted call (JAX), a transfer the eager frameworks do not pay.
    step_size, f_star = b.asarray(np.asarray(1.0 / inst.lipschitz), cell.device), inst.f_star
    runs = {}  # (mode, variant) -> (run() -> (iterations, f, status), compile_s, rel_err)
    for mode in cell.modes:
        vgs = b.value_and_grad(problem, mode)
        solvers = b.solvers(problem, mode)
        if not vgs and not solvers:
            continue
        try:
            reference = _checked_reference(cell, ctx, mode, "grad")
        except Unchecked as exc:
            yield [base_row(cell, mode=mode, variant=name, status="skipped", message=str(exc))
                   for name in (*vgs, *solvers)]
            continue
        rel_err = math.nan
        for variant, vg in vgs.items():
            try:
                rel_err = _rel_err(b.to_numpy(vg(x, data)[1]), reference)
                step, compile_s = b.compile(b.step(vg), (x0, data, step_size))
                stepper = lambda xk, step=step: step(xk, data, step_size)  # noqa: E731
                runs[mode, variant] = (_loop_runner(cell, b, stepper, x0, f_star), compile_s, rel_err,
                                       _loop_runner(cell, b, stepper, x0, f_star, max_iter=WARMUP_ITERATIONS))
            except Exception as exc:
                yield [base_row(cell, mode=mode, variant=variant, status="error", message=_describe(exc))]
        # Whole-solve variants use the same value_and_grad: its check (rel_err above) covers them.
        for variant, make in solvers.items():
            try:
                run, compile_s = make(x0, data, step_size, f_star, cell.eps, cell.max_iter)
                run = lambda run=run: _decode(run())  # noqa: E731
                # compiled whole (AOT): warmed up by one full run, in the cell's first part only
                runs[mode, variant] = (run, compile_s, rel_err, run if cell.first_round == 0 else None)
            except Exception as exc:
                yield [base_row(cell, mode=mode, variant=variant, status="error", message=_describe(exc))]
    # Warm-up: one untimed run each (first-call costs, caches), of WARMUP_ITERATIONS steps where
    # the loop is ours; its excess over that many median steps estimates the compile time where
    # the framework has no ahead-of-time compiler. A full warm-up run at n = 10^4 would cost as
    # much as a timed one.
    first_s = {}
    for key, (_, _, rel_err, warm) in list(runs.items()):
        row = base_row(cell, mode=key[0], variant=key[1], rel_err=rel_err)
        if not math.isfinite(rel_err):
            yield [dict(row, status="nan", message="non-finite gradient at the check point")]
        elif rel_err > cell.rtol:
            yield [dict(row, status="wrong", message=f"gradient relative error {rel_err:.2e} > rtol {cell.rtol:g}")]
        else:
            try:
                start = time.perf_counter()
                warmed = warm() if warm is not None else None
                first_s[key] = (time.perf_counter() - start, warmed[0] if warmed else 0)
                continue
            except Exception as exc:
                yield [dict(row, status="error", message=_describe(exc))]
        del runs[key]
    # Repeats interleave the variants in a fresh seeded order each, as eval rounds do.
    rows = {key: [] for key in runs}
    for repeat, order in rounds(cell.repeats, order_rng(cell), list(runs)):
        for position, key in enumerate(order):
            if key not in runs:
                continue  # failed in an earlier repeat: its error row is out, the others go on
            run, _, rel_err, _ = runs[key]
            row = base_row(cell, mode=key[0], variant=key[1], repeat=cell.first_round + repeat, position=position,
                           inner_loops=1, rel_err=rel_err)
            try:
                start = time.perf_counter()
                iterations, f_final, status = run()
                elapsed = time.perf_counter() - start
            except Exception as exc:
                yield rows.pop(key) + [dict(row, status="error", message=_describe(exc))]
                del runs[key]
                continue
            rows[key].append(dict(
                row, time_s=elapsed if status == "ok" else math.nan, iterations=iterations,
                f_final=f_final, gap=f_final - f_star, converged=status == "ok",
                status=status, message="" if status == "ok" else _solve_message(status, cell)))
    for key, key_rows in rows.items():
        compile_s = runs[key][1]
        if compile_s is None:  # the warm-up's excess over its steps at the timed runs' median pace
            per_step = float(np.nanmedian([r["time_s"] / max(r["iterations"], 1) for r in key_rows] or [math.nan]))
            warm_s, warm_steps = first_s[key]
            compile_s = max(warm_s - (warm_steps + 1) * per_step, 0.0) if math.isfinite(per_step) else math.nan
        yield [dict(r, compile_s=compile_s) for r in key_rows]


def _loop_runner(cell: Cell, b, stepper, x0, f_star, max_iter: int | None = None):
    budget = cell.time_budget_s / (cell.repeats + 1)

    def run():
        return descend(stepper, x0, to_float=b.to_float, f_star=f_star, eps=cell.eps,
                       max_iter=cell.max_iter if max_iter is None else max_iter, max_time_s=budget)

    return run


def _decode(result: tuple[int, float, int]) -> tuple[int, float, str]:
    iterations, f_final, code = result
    return iterations, f_final, STATUS_CODES.get(code, "error")


def _solve_message(status: str, cell: Cell) -> str:
    return {
        "not_converged": f"no convergence to eps={cell.eps:g} in {cell.max_iter} iterations",
        "diverged": "f grew past the divergence bound",
        "nan": "f became NaN or Inf",
        "timeout": "run exceeded its share of the cell's time budget",
    }.get(status, status)
