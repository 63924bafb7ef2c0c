"""Is a hand-derived derivative right? `nablabench check PROBLEM...`, before anyone times it.

Each derivative kind a problem declares is checked at several sizes and seeds:
- against central finite differences of f (the gradient and Jacobian), of the gradient (the
  Hessian, and the HVP along v), or Cauchy's integral formula (the k-th derivative);
- for consistency: the Hessian is symmetric, the HVP is H v, value_and_grad agrees with f and
  grad, every output has the shape it should and dtype float64, f is finite at the evaluation
  point (which must lie inside the domain);
- against the autodiff of every installed backend (every variant), with the sweep's own error
  measure and tolerance, so that a check that passes is a sweep that does not say `wrong`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import backends
import problems

from bench.core import defaults
from bench.measure.checks import describe, relative_error

FD_STEP = 1e-6
FD_RTOL = 1e-5  # central differences: truncation ~h^2 and roundoff ~eps |f| / h, far below this
EXACT_RTOL = 1e-10  # identities that hold to roundoff: symmetry, HVP = H v, value_and_grad
EXACT_FLOOR = 1e-12 / EXACT_RTOL  # ... compared absolutely (to 1e-12) where every entry is below this
FINITE_DIFFERENCES = "finite differences"
CONSISTENCY = "consistency"


def central_gradient(f, x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """d f / d x_i for a scalar f of a flat x, by central differences."""
    e = np.eye(x.size)
    return np.array([(f(x + h * e[i]) - f(x - h * e[i])) / (2 * h) for i in range(x.size)])


def central_jacobian(g, x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """d g_j / d x_i for a vector g of a flat x, by central differences: (len(g), x.size)."""
    e = np.eye(x.size)
    return np.stack([(g(x + h * e[i]) - g(x - h * e[i])) / (2 * h) for i in range(x.size)], axis=1)


RADII = (0.25, 0.5, 1.0)  # Cauchy's formula: the circles tried (see cauchy_derivative)


def cauchy_derivative(f, x: np.ndarray, k: int, radius: float = 0.5, points: int = 256) -> np.ndarray:
    """The k-th derivative of an elementwise, analytic f at each x_i, by Cauchy's integral formula
    on a circle of `radius` (trapezoidal rule: exponentially accurate while f has no pole within
    the radius; rounding grows as k! / radius^k, so high orders want the largest circle f allows).
    f must accept complex input."""
    theta = 2 * np.pi * np.arange(points) / points
    z = x[:, None] + radius * np.exp(1j * theta)[None, :]
    values = np.stack([np.asarray(f(z[:, j])) for j in range(points)], axis=1)
    coefficient = np.mean(values * np.exp(-1j * k * theta)[None, :], axis=1) / radius**k
    return (coefficient * math.factorial(k)).real


def max_rel_err(out, ref, floor: float = 0.0) -> float:
    """The largest entry error over the largest entry of either side (one wrong entry shows), or
    over `floor` where both are smaller: the noise of the reference (finite differences of f carry
    about eps |f| / h), so that a derivative that is zero is compared absolutely."""
    out, ref = np.asarray(out, dtype=np.float64).ravel(), np.asarray(ref, dtype=np.float64).ravel()
    scale = max(np.abs(ref).max(initial=0.0), np.abs(out).max(initial=0.0), floor)
    return float(np.abs(out - ref).max(initial=0.0) / scale) if scale > 0 else 0.0


def _noise(value) -> float:
    """The floor for differences of a function whose values are about `value` (see max_rel_err)."""
    return 1e-2 * (1.0 + float(np.abs(np.asarray(value, dtype=np.float64)).max(initial=0.0)))


@dataclass(frozen=True)
class Finding:
    problem: str
    derivative: str
    against: str  # FINITE_DIFFERENCES, CONSISTENCY or a backend's name
    n: int
    seed: int
    error: float  # relative; nan where the check could not run (the note says why), inf: non-finite
    tolerance: float
    note: str = ""

    @property
    def ok(self) -> bool:
        """Passed, or could not run (a framework that cannot differentiate f says nothing of f's formula)."""
        return math.isnan(self.error) or self.error <= self.tolerance


def _shape_ok(out, shape) -> bool:
    out = np.asarray(out)
    return out.shape == tuple(shape) and out.dtype == np.float64


def _inputs(problem: problems.Problem, n: int, seed: int):
    """(instance, x, v) at size n, or the reason there are none: an instance or evaluation point
    that raises fails the problem at that size (a user's instance may not scale), not the check."""
    try:
        inst = problem.instance(n, seed=seed)
    except Exception as exc:
        return f"instance({n}, seed={seed}) raised {describe(exc)}"[:300]
    try:
        x, v = problem.evaluation_point(n, seed)
    except Exception as exc:
        return f"evaluation_point({n}, {seed}) raised {describe(exc)}"[:300]
    return inst, np.asarray(x), np.asarray(v)


def formula_findings(problem: problems.Problem, n: int, seed: int) -> list[Finding]:
    """The analytic formulas against finite differences and their own identities.

    A formula that raises is a failure of its derivative kind, with the exception as the note; an
    instance or evaluation point that raises, a failure of f (nothing can be evaluated at that size).
    """
    inputs = _inputs(problem, n, seed)
    if isinstance(inputs, str):
        return [Finding(problem.name, "f", CONSISTENCY, n, seed, math.inf, EXACT_RTOL, inputs)]
    inst, x, v = inputs
    data, shape, dim = inst.data, x.shape, problem.dim(n)
    flat = x.ravel()
    out = []

    def found(derivative, against, error, tolerance, note=""):
        out.append(Finding(problem.name, derivative, against, n, seed, float(error), tolerance, note))

    def shape_check(derivative, value, expected):
        if not _shape_ok(value, expected):
            found(derivative, CONSISTENCY, math.inf, EXACT_RTOL,
                  f"shape {np.shape(value)} and dtype {np.asarray(value).dtype}; expected {tuple(expected)} float64")

    f_flat = lambda y: np.asarray(problem.f(y.reshape(shape), data))  # noqa: E731
    if x.size != dim:
        found("f", CONSISTENCY, math.inf, EXACT_RTOL, f"the evaluation point has {x.size} entries; dim({n}) = {dim}")
        return out

    def check_f():
        finite = bool(np.all(np.isfinite(np.asarray(problem.f(x, data)))))
        found("f", CONSISTENCY, 0.0 if finite else math.inf, EXACT_RTOL,
              "" if finite else "f is not finite at the evaluation point: it must lie inside the domain")

    def check_grad():
        grad = problem.grad(x, data)
        shape_check("grad", grad, shape)
        fd = central_gradient(lambda y: float(f_flat(y)), flat)
        found("grad", FINITE_DIFFERENCES, max_rel_err(grad, fd, _noise(problem.f(x, data))), FD_RTOL)
        fv, gv = problem.value_and_grad(x, data)
        found("grad", CONSISTENCY,
              max(max_rel_err(fv, problem.f(x, data), EXACT_FLOOR), max_rel_err(gv, grad, EXACT_FLOOR)),
              EXACT_RTOL, "value_and_grad against f and grad")

    def check_hess():
        hess = np.asarray(problem.hess(x, data))
        shape_check("hess", hess, (dim, dim))
        if hess.shape == (dim, dim):
            found("hess", CONSISTENCY, max_rel_err(hess, hess.T, EXACT_FLOOR), EXACT_RTOL, "symmetry")
            if problem.grad is not None:
                fd = central_jacobian(lambda y: np.asarray(problem.grad(y.reshape(shape), data)).ravel(), flat)
                found("hess", FINITE_DIFFERENCES, max_rel_err(hess, fd, _noise(problem.grad(x, data))), FD_RTOL,
                      "differences of the gradient")

    def check_hvp():
        hvp = problem.hvp(x, v, data)
        shape_check("hvp", hvp, shape)
        if problem.hess is not None:
            hess = np.asarray(problem.hess(x, data))
            found("hvp", CONSISTENCY, max_rel_err(hvp, hess @ v.ravel(), EXACT_FLOOR), EXACT_RTOL, "HVP against H v")
        if problem.grad is not None:
            g = lambda t: np.asarray(problem.grad((flat + t * v.ravel()).reshape(shape), data)).ravel()  # noqa: E731
            floor = _noise(problem.grad(x, data)) * np.abs(v).max(initial=1.0)
            found("hvp", FINITE_DIFFERENCES, max_rel_err(hvp, (g(FD_STEP) - g(-FD_STEP)) / (2 * FD_STEP), floor),
                  FD_RTOL, "directional differences of the gradient")

    def check_sparse_hess():
        values = np.asarray(problem.sparse_hess(x, data))
        pattern = problem.sparsity(n)
        shape_check("sparse_hess", values, (pattern.nnz,))
        if values.shape != (pattern.nnz,):
            return
        matrix = pattern.matrix(values)
        asymmetry = float(np.abs((matrix - matrix.T).data).max(initial=0.0))
        found("sparse_hess", CONSISTENCY, asymmetry / max(np.abs(values).max(initial=0.0), EXACT_FLOOR), EXACT_RTOL,
              "symmetry")
        if problem.hess is not None:
            hess = np.asarray(problem.hess(x, data))
            found("sparse_hess", CONSISTENCY, max_rel_err(matrix.toarray(), hess, EXACT_FLOOR), EXACT_RTOL,
                  "against the dense Hessian (and no nonzero outside the pattern)")
        if problem.grad is not None:  # each colour's columns at once: one difference of the gradient each
            g = lambda y: np.asarray(problem.grad(y.reshape(shape), data)).ravel()  # noqa: E731
            columns = np.array([(g(flat + FD_STEP * d) - g(flat - FD_STEP * d)) / (2 * FD_STEP)
                                for d in pattern.directions()])
            found("sparse_hess", FINITE_DIFFERENCES,
                  max_rel_err(values, pattern.decompress(columns), _noise(problem.grad(x, data))), FD_RTOL,
                  "differences of the gradient along each colour's columns")

    def check_jac():
        jac = problem.jac(x, data)
        shape_check("jac", jac, (np.size(problem.f(x, data)), dim))
        fd = central_jacobian(lambda y: f_flat(y).ravel(), flat)
        found("jac", FINITE_DIFFERENCES, max_rel_err(jac, fd, _noise(problem.f(x, data))), FD_RTOL)

    def check_dk():
        dk = problem.dk(x, data)
        shape_check("dk", dk, shape)
        try:
            # the circle whose result agrees best: f may be analytic only in a small one, and a
            # high order wants a large one (rounding grows as k! / radius^k)
            errors = {r: max_rel_err(dk, cauchy_derivative(lambda z: problem.f(z, data), flat, problem.order(data), r))
                      for r in RADII}
        except (TypeError, ValueError) as exc:
            found("dk", FINITE_DIFFERENCES, math.nan, FD_RTOL,
                  f"Cauchy's formula needs f to accept complex x: {type(exc).__name__}: {exc}")
            return
        radius = min(errors, key=errors.get)
        found("dk", FINITE_DIFFERENCES, errors[radius], FD_RTOL, f"Cauchy's integral formula, radius {radius}")

    def check_newton():
        newton = problem.newton(x, data)
        shape_check("newton", newton, shape)
        g = np.asarray(problem.grad(x, data)).ravel()
        diagonal = np.diag(central_jacobian(lambda y: np.asarray(problem.grad(y.reshape(shape), data)).ravel(), flat))
        found("newton", FINITE_DIFFERENCES, max_rel_err(newton, g / diagonal, _noise(g / diagonal)), FD_RTOL,
              "the gradient over differences of the gradient on the diagonal")

    checks = {"f": check_f, "grad": check_grad, "hess": check_hess, "sparse_hess": check_sparse_hess, "hvp": check_hvp,
              "jac": check_jac, "dk": check_dk, "newton": check_newton}
    for derivative in problem.derivatives:
        try:
            checks[derivative]()
        except Exception as exc:
            found(derivative, CONSISTENCY, math.inf, EXACT_RTOL, f"raised {type(exc).__name__}: {exc}"[:300])
        if derivative == "f" and not out[-1].ok:
            return out  # f fails or lies outside its domain: nothing else is meaningful
    return out


def autodiff_findings(backend: backends.Backend, problem: problems.Problem, n: int, seed: int,
                      device: str = "cpu") -> list[Finding]:
    """Every autodiff variant of `backend` against the problem's formula, with the sweep's error;
    none where the problem has no instance at that size (formula_findings fails it)."""
    inputs = _inputs(problem, n, seed)
    if isinstance(inputs, str):
        return []
    inst, x_np, v_np = inputs
    to = lambda a: backend.asarray(np.asarray(a, dtype=np.float64), device)  # noqa: E731
    data = {k: to(a) if isinstance(a, np.ndarray) else a for k, a in inst.data.items()}
    x, v = to(x_np), to(v_np)
    out = []
    for derivative, variants in backend.functions(problem, "autodiff").items():
        kind = problems.KINDS[derivative]
        expected = getattr(problem, derivative)(*((x_np, v_np) if kind.takes_direction else (x_np,)), inst.data)
        for variant, fn in variants.items():
            note = f"{variant}"
            try:
                result = fn(x, v, data) if kind.takes_direction else fn(x, data)
                backend.sync(result)
                error = relative_error(backend.to_numpy(result), expected)
                error = error if math.isfinite(error) else math.inf
            except backends.Infeasible as exc:
                error, note = math.nan, f"{variant} declined: {exc}"
            except Exception as exc:  # a framework that cannot differentiate f: shown, not hidden
                error, note = math.nan, f"{variant}: {type(exc).__name__}: {exc}"[:300]
            out.append(Finding(problem.name, derivative, backend.name, n, seed, error, defaults.RTOL, note))
    return out


COST = "cost model (as written)"
# time x bandwidth within this factor of the declared bytes, either way: a formula's time also pays
# for what bandwidth does not count (measured here: first touches of fresh temporaries, which this
# VM's page faults make dear, with kmeans' k x N arrays at about 2x; compute; call overheads)
COST_TOLERANCE = 3.0
COST_SIZES = (256, 512, 1024, 2048, 4096)


def cost_sizes(llc_bytes: int) -> tuple[int, ...]:
    """COST_SIZES, and beyond them the first multiple of 1024 whose n x n float64 matrix is 4x the
    last-level cache (16384 on a CPU with 480 MiB of it), so that the check runs on every machine
    class: where the cache holds the largest fixed size, a larger one is memory-bound. Sizes whose
    matrix would not fit in half the free memory are left out."""
    import psutil

    beyond = 1024 * math.ceil(math.sqrt(4 * llc_bytes / 8) / 1024)
    fits = 8 * beyond ** 2 * 2 <= psutil.virtual_memory().available / 2  # A and a copy's worth of temporaries
    return COST_SIZES + ((beyond,) if beyond > COST_SIZES[-1] and fits else ())


def cost_findings(problem: problems.Problem, roofs: dict, *, repeats: int = 5) -> list[Finding]:
    """Each derivative's declared bytes as written (problems.Cost) against a measurement, where the
    cost model says the call is memory-bound: at the first size of `cost_sizes` (within the problem's
    limits) whose data or declared bytes are 4x the last-level cache or more and whose declared
    bytes / bandwidth exceed its flops / peak, the numpy formula's median time over `repeats` calls times the measured
    bandwidth (`roofs`: bench.measure.roofline.measure, in this process) is the bytes it moved; the error
    is that over the declared bytes, or its inverse, whichever is larger. A kind that is not
    memory-bound at any of those sizes is not checked (said why): a formula far from peak FLOP/s says
    nothing of its flop count, nor a call that overheads dominate of its bytes."""
    import time

    from bench.measure.roofline import floor_seconds

    out = []
    for kind in problem.derivatives:
        cost_of = (lambda n: problem.cost(kind, n)) if problem.cost else (lambda n: None)
        limit = problem.size_limits.get(kind, math.inf)
        fitting = [n for n in cost_sizes(roofs["llc_bytes"]) if n <= limit and cost_of(n) is not None
                   and max(cost_of(n).written, problem.data_bytes(n)) >= 4 * roofs["llc_bytes"]
                   and cost_of(n).written / roofs["bandwidth_GBps"] > cost_of(n).flops / roofs["peak_GFLOPs"]]
        if cost_of(COST_SIZES[0]) is None:
            continue  # no cost model for this kind: nothing to check
        if not fitting:
            out.append(Finding(problem.name, kind, COST, 0, 0, math.nan, COST_TOLERANCE,
                               f"not memory-bound at n <= {min(limit, cost_sizes(roofs['llc_bytes'])[-1])} "
                               "by its own model: "
                               "not checked"))
            continue
        n = fitting[0]
        inputs = _inputs(problem, n, 0)
        if isinstance(inputs, str):
            out.append(Finding(problem.name, kind, COST, n, 0, math.inf, COST_TOLERANCE, inputs))
            continue
        inst, x, v = inputs
        fn = getattr(problem, kind)
        call = (lambda: fn(x, v, inst.data)) if problems.KINDS[kind].takes_direction else (lambda: fn(x, inst.data))
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        moved = float(np.median(times)) * roofs["bandwidth_GBps"] * 1e9
        declared = cost_of(n).written
        ratio = moved / declared
        note = (f"n={n}: {declared / 1e6:.0f} MB declared as written, time x {roofs['bandwidth_GBps']:.1f} GB/s "
                f"says {moved / 1e6:.0f} MB (floor {floor_seconds(cost_of(n), roofs) * 1e3:.2g} ms)")
        out.append(Finding(problem.name, kind, COST, n, 0, max(ratio, 1 / ratio), COST_TOLERANCE, note))
    return out


def sizes_for(problem: problems.Problem, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The requested sizes within the problem's declared limits, a matrix variable's kept small."""
    limit = min(problem.size_limits.values(), default=None)
    fitted = []
    for n in sizes:
        if problem.dim(2 * n) >= 3 * problem.dim(n):  # an n x n matrix variable: n^2 variables, Hessian n^4
            n = max(2, round(n ** 0.5))
        fitted.append(min(n, limit) if limit else n)
    return tuple(dict.fromkeys(fitted))


def check(names: list[str], *, sizes=(8, 32), seeds=(0, 1), backend_names=None, cost: bool = False) -> list[Finding]:
    """Every finding for every problem, size, seed and installed backend; with `cost`, each cost
    model against a measurement too (`cost_findings`, one thread)."""
    chosen = [b for b in (backend_names or backends.names()) if backends.get(b).available()[0]]
    ready = []
    for name in chosen:
        b = backends.get(name)
        if "autodiff" in b.modes:
            b.setup(1)  # JAX: float64 before any JAX array exists
            ready.append(b)
    findings = []
    for name in names:
        problem = problems.get(name)
        for n in sizes_for(problem, tuple(sizes)):
            for seed in seeds:
                findings += formula_findings(problem, n, seed)
                for b in ready:
                    findings += autodiff_findings(b, problem, n, seed)
    if cost:
        from threadpoolctl import threadpool_limits

        from bench.measure.roofline import measure

        with threadpool_limits(limits=1):
            roofs = measure("cpu", 1)
            for name in names:
                findings += cost_findings(problems.get(name), roofs)
    return findings


def _cell(part: list[Finding]) -> str:
    """One derivative against one reference: the largest error and pass/fail; `not run` where no
    check of it could run (the reasons are listed under the table, never shown as a pass)."""
    ran = [f for f in part if not math.isnan(f.error)]
    if not ran:
        return "not run"
    worst = max(ran, key=lambda f: (not f.ok, f.error))
    return f"{worst.error:.1e} {'ok' if all(f.ok for f in ran) else 'FAIL'}"


def grid(findings: list[Finding]) -> dict[str, dict[str, dict[str, str]]]:
    """problem -> derivative -> reference (finite differences, consistency, each backend) -> its cell
    (`_cell`), "–" where the reference does not apply: the table `nablabench check` prints."""
    columns = list(dict.fromkeys([FINITE_DIFFERENCES, CONSISTENCY] + [f.against for f in findings]))
    out: dict[str, dict[str, dict[str, str]]] = {}
    for problem in dict.fromkeys(f.problem for f in findings):
        mine = [f for f in findings if f.problem == problem]
        for derivative in [d for d in problems.DERIVATIVE_KINDS if any(f.derivative == d for f in mine)]:
            row = out.setdefault(problem, {}).setdefault(derivative, {})
            for column in columns:
                part = [f for f in mine if f.derivative == derivative and f.against == column]
                row[column] = _cell(part) if part else "–"
    return out


def not_run(findings: list[Finding]) -> list[str]:
    """Why each `not run` cell of the grid is empty: the first reason of each (problem, derivative,
    reference), such as a framework that cannot trace f (scipy's `rosen` calls plain numpy, which
    JAX cannot trace) or a variant that declined the size."""
    reasons: dict[tuple, str] = {}
    for f in findings:
        key = (f.problem, f.derivative, f.against)
        if math.isnan(f.error):
            reasons.setdefault(key, f.note or "no reason given")
        else:
            reasons[key] = ""  # another variant or size of it ran
    return [f"{p} {d} vs {a}: {note}" for (p, d, a), note in reasons.items() if note]


def table(findings: list[Finding]) -> str:
    """Derivative x (finite differences, consistency, backends): the largest error and pass/fail."""
    lines = []
    for problem, rows in grid(findings).items():
        mine = [f for f in findings if f.problem == problem]
        lines.append(f"{problem}: " + ", ".join(f"n={n}" for n in dict.fromkeys(f.n for f in mine))
                     + "; seeds " + ", ".join(str(s) for s in dict.fromkeys(f.seed for f in mine)))
        columns = next(iter(rows.values()))
        lines.append(f"  {'derivative':10}" + "".join(f"{c:>22}" for c in columns))
        for derivative, cells in rows.items():
            lines.append(f"  {derivative:10}" + "".join(f"{c:>22}" for c in cells.values()))
    reasons = not_run(findings)
    if reasons:
        lines.append("not run (no verdict; the reason of each):")
        lines += [f"  {reason}" for reason in reasons]
    failing = [f for f in findings if not f.ok]
    if failing:
        lines.append("failures (the worst of each):")
        seen = set()
        for f in sorted(failing, key=lambda f: -f.error if math.isfinite(f.error) else -math.inf):
            key = (f.problem, f.derivative, f.against)
            if key not in seen:
                seen.add(key)
                lines.append(f"  {f.problem} {f.derivative} vs {f.against}: error "
                             f"{f.error:.2e} > {f.tolerance:g} at n={f.n}, seed={f.seed}"
                             + (f" ({f.note})" if f.note else ""))
    return "\n".join(lines)


def failing_derivatives(findings: list[Finding]) -> list[str]:
    """`problem derivative` for each derivative that failed a check, in kind order."""
    bad = {(f.problem, f.derivative) for f in findings if not f.ok}
    return [f"{p} {d}" for p in dict.fromkeys(f.problem for f in findings)
            for d in problems.DERIVATIVE_KINDS if (p, d) in bad]
