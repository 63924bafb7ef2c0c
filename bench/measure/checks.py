"""Before anything is timed: each variant compiled, called once and checked against the other mode
(analytic against autodiff), then calibrated. Shared by every task's cell and by counting."""
from __future__ import annotations

import math
import traceback
import zlib

import numpy as np

import backends
import problems

from bench.core.cell import Cell, base_row
from bench.measure.accuracy import Precise, error
from bench.measure.context import Context, Ready
from bench.measure.memory import PeakMemory
from bench.measure.timing import calibrate, first_call

# eval: a first call this long (seconds) lasts a sample whatever its compile or first-call costs were
# (torch.func's first call in a process took 0.8 s): such a variant is not calibrated, one call a sample
LONG_CALL_S = 1.0


def describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError: out of memory"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def declared(cell: Cell, b, variants: list[tuple]) -> tuple[list[tuple], list[dict]]:
    """Of a cell's (mode, variant, ...) entries, those that may run, and an `error` row (in the cell's
    first part) for each autodiff variant whose backend declares no analytic twin for it
    (backends.Backend.pairs): its ratio would divide by a guess, so it is refused before any work."""
    runnable, refused = [], []
    for entry in variants:
        mode, variant = entry[0], entry[1]
        if mode == "autodiff" and variant not in b.pairs:
            refused.append(base_row(cell, mode=mode, variant=variant, status="error", message=(
                f"{b.name}'s autodiff variant `{variant}` declares no analytic twin (backends.Backend.pairs): "
                "name the analytic variant of its execution regime")))
        else:
            runnable.append(entry)
    return runnable, refused if cell.part == 0 else []


def call_variant(derivative: str, fn, x, v, data):
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
    """No independent result to check a variant against (the other mode failed, declined, or gave
    a result of the wrong shape)."""


def expected_shape(problem: problems.Problem, derivative: str, x_np: np.ndarray, data: dict,
                   n: int | None = None) -> tuple[int, ...]:
    """The shape `derivative` has by its kind's definition (problems.Problem), at the numpy point
    x_np of size n: x's own for grad, hvp, dk and newton; (N, N) for hess and (m, N) for jac, over vec(x),
    with m the size of numpy's f; f's, for f; (nnz,) for sparse_hess, its pattern's."""
    if derivative == "sparse_hess":
        return (problem.sparsity(n).nnz,)
    if derivative in ("f", "jac"):
        f_shape = np.shape(problem.f(x_np, data))
        return f_shape if derivative == "f" else (math.prod(f_shape), x_np.size)
    return (x_np.size, x_np.size) if derivative == "hess" else x_np.shape


def reference(cell: Cell, ctx: Context, mode: str, derivative: str, outputs: dict | None = None):
    """The independent result each mode is checked against: analytic vs autodiff, always.

    Analytic is checked against this backend's first autodiff variant (an analytic-only backend
    against the autodiff of the backend its record names: numpy against autograd); autodiff
    against this backend's analytic formula. f is checked against numpy's f. `outputs`: the
    results the cell's variants already gave, {(mode, variant): result}, in the backend's order;
    the other mode's first one of the shape the kind defines (`expected_shape`) is the reference, so
    that nothing is computed twice (JAX compiled every reference a second time, through jit, before).
    A reference of the wrong shape is none: Unchecked says so, and the variant that gave it is
    `wrong` by its own check (check_result), so that one wrong result never marks another.
    """
    b = ctx.backend
    inst, data, x, v, x_np, v_np, _ = ctx.instance(cell)
    problem = problems.get(cell.problem)
    if derivative == "f":
        return problem.f(x_np, inst.data)
    other = "autodiff" if mode == "analytic" else "analytic"
    expected = expected_shape(problem, derivative, x_np, inst.data, cell.n)

    def fitting(results: list, source: str):
        for out in results:
            if np.size(out) == math.prod(expected):
                return np.reshape(out, expected)  # (an autodiff Hessian of f(X) is (n, n, n, n): over vec(X) here)
        raise Unchecked(f"unchecked, so not timed: {source}, the result to check against, has shape "
                        f"{np.shape(results[0])} where {expected} was expected")

    known = [out for (m, _), out in (outputs or {}).items() if m == other]
    if known:
        return fitting(known, f"{b.name}'s {other} {derivative}")
    if derivative == "sparse_hess":  # the other mode's own nonzeros, else its HVPs decompressed
        try:
            if other not in b.modes:
                raise KeyError(other)
            out = b.to_numpy(first_feasible(b.functions(problem, other)[derivative], derivative, x, v, data))
            return fitting([out], f"{b.name}'s {other} {derivative}")
        except (KeyError, backends.Infeasible):  # none in this backend's other mode, or none it offers
            return fitting([decompressed(cell, ctx, other)], f"{other} HVPs decompressed")
    if other in b.modes and derivative in b.functions(problem, other):
        out = b.to_numpy(first_feasible(b.functions(problem, other)[derivative], derivative, x, v, data))
        return fitting([out], f"{b.name}'s {other} {derivative}")
    if not b.checked_by:
        raise backends.Infeasible(f"{b.name} has no {other} {derivative} for {cell.problem}, and its record names no "
                                  "backend to check against (checked_by)")
    host = backends.get(b.checked_by)
    out = np.asarray(first_feasible(host.functions(problem, other)[derivative], derivative, x_np, v_np, inst.data))
    return fitting([out], f"{host.name}'s {other} {derivative}")


def decompressed(cell: Cell, ctx: Context, mode: str) -> np.ndarray:
    """A sparse Hessian's nonzeros from `mode`'s HVPs, one along each colour of the problem's pattern
    (problems.Sparsity: Curtis, Powell and Reid's compression), where `mode` has no sparse Hessian of its
    own: this backend's HVP, else the HVP of the backend its record names (checked_by)."""
    b = ctx.backend
    inst, data, x, _, x_np, _, _ = ctx.instance(cell)
    problem = problems.get(cell.problem)
    pattern = problem.sparsity(cell.n)
    if mode in b.modes and "hvp" in b.functions(problem, mode):
        hvps, to, read = b.functions(problem, mode)["hvp"], (lambda d: b.asarray(d, cell.device)), b.to_numpy
    elif b.checked_by:
        host = backends.get(b.checked_by)
        hvps, to, read, x, data = host.functions(problem, mode)["hvp"], (lambda d: d), np.asarray, x_np, inst.data
    else:
        raise backends.Infeasible(f"{b.name} has no {mode} HVP for {cell.problem} to check its sparse Hessian with")
    products = [read(first_feasible(hvps, "hvp", x, to(d), data)) for d in pattern.directions(cell.dtype)]
    return pattern.decompress(np.reshape(products, (len(products), -1)))


def checked_reference(cell: Cell, ctx: Context, mode: str, derivative: str, outputs: dict | None = None):
    """`reference`, or Unchecked saying why there is none (then the mode is not timed)."""
    try:
        return reference(cell, ctx, mode, derivative, outputs)
    except Unchecked:
        raise
    except backends.Infeasible as exc:
        raise Unchecked(f"unchecked, so not timed: {exc}") from None
    except Exception as exc:
        raise Unchecked(f"unchecked, so not timed: the result to check against failed: {describe(exc)}") from None


def first_feasible(variants: dict, derivative: str, x, v, data):
    """The first variant's result that the variant can afford (see backends.Infeasible)."""
    declined = []
    for fn in variants.values():
        try:
            return call_variant(derivative, fn, x, v, data)
        except backends.Infeasible as exc:
            declined.append(str(exc))
    raise backends.Infeasible("every variant of the other mode declined: " + "; ".join(declined))


def order_rng(cell: Cell) -> np.random.Generator:
    """The seeded source of a cell's round orders: the run's seed, the cell's key and its part."""
    return np.random.default_rng([cell.seed, zlib.crc32(repr(cell.key).encode()), cell.first_round])


def check_result(row: dict, out, reference, cell: Cell, precise: Precise | None = None) -> dict | None:
    """rel_err (and, where the accuracy is measured, precise_err and condition) into `row`; a `nan` or
    `wrong` row where the variant must not be timed. `reference` has the shape its kind defines
    (`reference` sees to it): a result of another size is `wrong`, and so is one in another dtype than the
    cell's (a computation promoted to float64 inside the call would be timed as float32's). The gate's
    tolerance: the cell's (`precise.rtol`, from its dtype and condition), else the run's --rtol."""
    rtol = cell.rtol if precise is None else precise.rtol
    row["rtol"] = rtol
    if precise is not None:
        row["condition"] = precise.condition
        if precise.reference is not None:
            row["precise_err"] = error(out, precise.reference)
    if np.size(out) != np.size(reference):
        row["rel_err"] = math.inf
        return dict(row, status="wrong", message=f"shape {np.shape(out)} where {np.shape(reference)} was expected")
    if np.asarray(out).dtype != np.dtype(cell.dtype):
        return dict(row, status="wrong", message=f"a {np.asarray(out).dtype} result where {cell.dtype} was asked: "
                                                 "promoted inside the call (it would be timed as another precision)")
    row["rel_err"] = relative_error(out, reference)
    if not np.isfinite(row["rel_err"]):
        return dict(row, status="nan", message="non-finite derivative, or a non-finite result to check against")
    if row["rel_err"] > rtol:
        return dict(row, status="wrong", message=f"relative error {row['rel_err']:.2e} > rtol {rtol:.2g}")
    return None


def compile_and_call(cell: Cell, ctx: Context, fn, args, row: dict):
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
        return dict(row, status="error", message=describe(exc))


def make_ready(cell: Cell, ctx: Context, key: tuple, first: tuple, reference, row: dict,
               precise: Precise | None = None) -> dict | None:
    """Check a called variant against the other mode's result, calibrate it, and keep it in
    ctx.ready. Returns its failure row (wrong, nan, error), or None when it is ready."""
    b = ctx.backend
    compiled, compile_s, first_s, peak, out = first
    failed = check_result(row, out, reference, cell, precise)
    if failed:
        return failed
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    call = lambda: compiled(*args)  # noqa: E731
    # A first call this long may be one-time costs (torch.func's first call in a process imports and
    # sets up functorch: 0.8 to 1.2 s, its later calls 0.2 ms): a second call tells. Taken as a
    # sample of one call each, a 0.2 ms variant timed 2x slow (an A/B of one tree against itself
    # called torch.func's gradient 0.45x on the side whose first call was quicker).
    long_call = first_s >= LONG_CALL_S and first_call(call, b.sync)[1] >= LONG_CALL_S
    if long_call:  # a call this long lasts a sample: calibrating it would cost one more
        loops, per_call = 1, None  # (and its compile estimate waits for its first timed sample)
    else:
        try:
            loops, per_call = calibrate(call, sync=b.sync, min_sample_s=cell.min_sample_s,
                                        warmup_s=2 * cell.min_sample_s)
        except Exception as exc:
            return dict(row, status="error", message=describe(exc))
    if compile_s is None and per_call is not None:  # no ahead-of-time compiler: the first call's excess
        compile_s = max(first_s - per_call, 0.0)
    ctx.ready[(cell.key, *key)] = Ready(compiled, loops, compile_s, first_s, row["rel_err"], peak,
                                        gate=gate_fields(row))
    return None


GATE_FIELDS = ("rtol", "condition", "precise_err")


def gate_fields(row: dict) -> dict:
    """What a checked variant's later rows repeat of its check: the tolerance, the condition and its error
    against the higher precision (bench.measure.accuracy)."""
    return {k: row[k] for k in GATE_FIELDS if k in row}
