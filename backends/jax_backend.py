"""JAX: every function jitted, analytic and autodiff alike, compiled ahead of time (timed apart).

float64 needs `jax_enable_x64` before any array exists: `setup` sets it, and the worker calls
setup before anything else touches JAX; float32 arrays stay float32 under x64 (`asarray` keeps the
numpy array's dtype), and every function computes in its arguments' dtype. Data are passed to jitted
functions as arguments, never closed over (closures over big arrays become constants and slow
compilation down).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ._protocol import DIVERGENCE_FACTOR, SOLVE_STATUSES, Backend, Infeasible, has_module, nested_order_check

# The while-loop's status codes: _protocol.SOLVE_STATUSES, and 0 while it runs.
_RUNNING, _OK, _NAN, _DIVERGED, _NOT_CONVERGED = 0, *SOLVE_STATUSES


def setup(threads: int, device: str = "cpu") -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    # Synchronous CPU dispatch, in the sweep, bench.validate and the CI suite alike. Every timed call
    # is synchronised anyway, so an asynchronous dispatch only adds a hand-over to a worker thread.
    # Measured (scripts/jax_dispatch.py, 6 fresh processes a setting): pinned to one CPU, the two
    # are alike (jit grad at n = 10: 11.2 us on, 11.3 off); given two CPUs, the processes' medians
    # spread up to 4.1x with it on (f at n = 100: 18 to 73 us) and 1.8x with it off.
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "jax_devices": [str(d) for d in jax.devices()],
            "jax_cpu_async_dispatch": bool(jax.config.read("jax_cpu_enable_async_dispatch"))}


def _devices() -> list[str]:
    import jax

    found = ["cpu"]
    try:
        if jax.devices("gpu"):
            found.append("cuda")
    except RuntimeError:
        pass
    return found


def _asarray(a: np.ndarray, device: str):
    import jax

    return jax.device_put(a, jax.devices("gpu" if device == "cuda" else "cpu")[0])


# Measured here (tanh, 2 cores): compiling k nested grads took 0.8 s at k = 8, 12 s at k = 10 and
# 380 s at k = 12 (the traced program grows ~4x per order); k nested jvps 3.9 s at 10, 38 s at 12.
NESTED_LIMITS = {"nested-grad": (10, "compile 12 s at k=10, 380 s at k=12"),
                 "nested-jvp": (10, "compile 3.9 s at k=10, 38 s at k=12")}


def _functions(problem, mode):
    import jax

    if mode == "analytic":
        return {d: {"jit": jax.jit(getattr(problem, d))} for d in problem.derivatives}
    return {d: _AUTODIFF[d](problem) for d in problem.derivatives if d in _AUTODIFF}


def _grad(problem):
    import jax

    return {"jit": jax.jit(jax.grad(problem.f))}


def _hvp(problem):
    import jax
    import jax.numpy as jnp

    grad_f = jax.grad(problem.f)

    def hvp_fwd_rev(x, v, data):  # forward-over-reverse: JAX's recommended HVP
        return jax.jvp(lambda y: grad_f(y, data), (x,), (v,))[1]

    def hvp_rev_rev(x, v, data):  # reverse-over-reverse, as in the seed
        return jax.grad(lambda y: jnp.vdot(grad_f(y, data), v))(x)

    return {"fwd-rev": jax.jit(hvp_fwd_rev), "rev-rev": jax.jit(hvp_rev_rev)}


def _hess(problem):
    import jax

    return {"hessian": jax.jit(jax.hessian(problem.f)),  # jacfwd(jacrev)
            "jacrev-jacrev": jax.jit(jax.jacrev(jax.jacrev(problem.f)))}


class _SparseAutodiff:
    """asdex's sparse Hessian of f (Hill, Dalle and others: "Automatic Sparse Differentiation in JAX"): its
    sparsity detection on f's jaxpr and its star colouring run when the variant is lowered, so that the
    sweep times them with the compile, apart (backends.Backend.compile); the timed call is one compiled
    program of the compressed HVPs (forward over reverse, one a colour) and their decompression. Its
    result is asdex's BCOO values, in CSR order as the problem's pattern (problems.Sparsity); where asdex's
    pattern differs, they are put in the problem's order by a gather of nnz entries (an entry asdex found
    structurally zero reads as 0; one it keeps that the pattern lacks must be zero)."""

    def __init__(self, problem):
        self.problem = problem
        self.note = ""  # asdex's colours and nonzeros, once lowered (the rows' message)

    def _prepared(self, x, data):
        try:
            import asdex
        except ImportError:
            raise Infeasible("asdex is not installed (the `sparse` extra: pip install '.[sparse]')") from None
        import jax
        import jax.numpy as jnp

        coloring = asdex.hessian_coloring(self.problem.f, x, data)
        hessian = asdex.hessian_from_coloring(self.problem.f, coloring, "bcoo")
        found = jax.jit(hessian)(x, data)
        pattern = self.problem.sparsity(self.problem.size_for(x.shape[0]))
        order, outside = _placed(np.asarray(found.indices), pattern, x.shape[0])
        if outside.size:  # entries asdex's detection keeps that the pattern rules out must be zero
            values = np.abs(np.asarray(found.data))
            if values[outside].max() > 1e-12 * max(values.max(), 1.0):
                raise ValueError(f"asdex's Hessian has {values[outside].max():.3g} outside the problem's "
                                 "sparsity pattern")
        self.note = (f"asdex: {coloring.num_colors} colours (HVPs a call), {int(found.nse)} nonzeros detected, "
                     f"{pattern.nnz} in the pattern")

        if outside.size == 0 and np.array_equal(order, np.arange(len(order))):
            return jax.jit(lambda y, d: hessian(y, d).data)  # asdex's order is the pattern's (CSR): no gather

        def values(y, d):
            out = hessian(y, d)
            return jnp.concatenate((out.data, jnp.zeros((1,), out.data.dtype)))[order]

        return jax.jit(values)

    def lower(self, x, data):
        return self._prepared(x, data).lower(x, data)

    def __call__(self, x, data):
        return self._prepared(x, data)(x, data)


def _placed(indices: np.ndarray, pattern, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, outside): for each entry of the problem's pattern, its position among asdex's (rows, cols)
    `indices`, or len(indices) where asdex has none (the zero put after its values); and the positions
    of asdex's entries that the pattern lacks."""
    found = indices[:, 0].astype(np.int64) * dim + indices[:, 1]
    wanted = pattern.rows.astype(np.int64) * dim + pattern.cols
    by_key = np.argsort(found)
    at = np.clip(np.searchsorted(found, wanted, sorter=by_key), 0, max(len(found) - 1, 0))
    order = np.where(found[by_key[at]] == wanted, by_key[at], len(found)) if len(found) else np.zeros_like(wanted)
    return order, np.flatnonzero(~np.isin(found, wanted))


def _sparse_hess(problem):
    return {"asdex": _SparseAutodiff(problem)}


def _jac(problem):
    import jax

    return {"jacfwd": jax.jit(jax.jacfwd(problem.f)), "jacrev": jax.jit(jax.jacrev(problem.f))}


def _dk(problem):
    """f^(k) elementwise: k nested grads of sum(f), k nested jvps, or one Taylor-mode pass (jet)."""
    import jax
    import jax.numpy as jnp

    try:
        from jax.experimental.jet import jet
    except ImportError as exc:  # experimental: may go in a later JAX
        jet, missing = None, f"jax.experimental.jet is not available in jax {jax.__version__}: {exc}"

    def nested_grad(x, data):
        k = problem.order(data)  # static: a shape
        nested_order_check("jax", "nested-grad", k, NESTED_LIMITS)
        g = lambda y: problem.f(y, data)  # noqa: E731
        for _ in range(k):
            g = (lambda h: jax.grad(lambda y: jnp.sum(h(y))))(g)
        return g(x)

    def nested_jvp(x, data):
        k = problem.order(data)
        nested_order_check("jax", "nested-jvp", k, NESTED_LIMITS)
        g = lambda y: problem.f(y, data)  # noqa: E731
        for _ in range(k):
            g = (lambda h: lambda y: jax.jvp(h, (y,), (jnp.ones_like(y),))[1])(g)
        return g(x)

    def taylor(x, data):
        if jet is None:
            raise Infeasible(missing)
        k = problem.order(data)
        series = (jnp.ones_like(x),) + tuple(jnp.zeros_like(x) for _ in range(k - 1))
        return jet(lambda y: problem.f(y, data), (x,), (series,))[1][-1]

    return {"nested-grad": jax.jit(nested_grad), "nested-jvp": jax.jit(nested_jvp), "jet": jax.jit(taylor)}


def _newton(problem):
    """grad / (H 1): the gradient and the HVP with ones from one forward-over-reverse pass."""
    import jax
    import jax.numpy as jnp

    grad_f = jax.grad(problem.f)

    def fwd_rev(x, data):
        g, hv = jax.jvp(lambda y: grad_f(y, data), (x,), (jnp.ones_like(x),))
        return g / hv

    return {"fwd-rev": jax.jit(fwd_rev)}


_AUTODIFF = {"grad": _grad, "hvp": _hvp, "hess": _hess, "sparse_hess": _sparse_hess, "jac": _jac, "dk": _dk,
             "newton": _newton}


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    import jax

    return {"jit": problem.value_and_grad if mode == "analytic" else jax.value_and_grad(problem.f)}


def _step(value_and_grad):
    import jax

    # f and the update fused in one jitted call: one dispatch per iteration.
    def step(x, data, step_size):
        value, g = value_and_grad(x, data)
        return value, x - step_size * g

    return jax.jit(step)


def _fuse(fn):
    """A Newton-type solver's piece (bench.solvers) as one jitted program, compiled by `_compile`."""
    import jax

    return jax.jit(fn)


def _solvers(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    (value_and_grad,) = _value_and_grad(problem, mode).values()
    return {"while-loop": _while_loop_solver(value_and_grad)}


def _while_loop_solver(value_and_grad):
    """The whole descent in one jitted lax.while_loop: no host round trip per iteration.

    solve(x0, data, step_size, f_star, eps, max_iter) -> (iterations, f, status code); max_iter is
    an argument, not a constant, so one compiled program serves a short warm-up and the timed runs."""
    import jax
    import jax.numpy as jnp

    def solve(x0, data, step_size, f_star, eps, max_iter):
        step_size = jnp.asarray(step_size, x0.dtype)  # the descent runs in x0's dtype (float32 stays float32)

        def body(state):
            k, x, _, gap0, _ = state
            value, g = value_and_grad(x, data)
            gap = value - f_star
            gap0 = jnp.where(k == 0, gap, gap0)
            status = jnp.select(
                [gap <= eps, ~jnp.isfinite(gap), gap > DIVERGENCE_FACTOR * (1.0 + jnp.abs(gap0)),
                 k >= max_iter],
                [_OK, _NAN, _DIVERGED, _NOT_CONVERGED], _RUNNING)
            running = status == _RUNNING
            return (jnp.where(running, k + 1, k), jnp.where(running, x - step_size * g, x),
                    value, gap0, status)

        init = (0, x0, jnp.asarray(jnp.inf, x0.dtype), jnp.asarray(0.0, x0.dtype), _RUNNING)
        k, _, value, _, status = jax.lax.while_loop(lambda s: s[4] == _RUNNING, body, init)
        return k, value, status

    return jax.jit(solve)


def _compile(fn, args):
    """Trace, lower and compile, timed. JAX caches all three per function and shapes within a
    process, so a formula met again (the next pass, another cell's reference) compiled in under
    a millisecond; clearing the caches first makes every variant's compile time a cold one."""
    import jax

    jax.clear_caches()
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _sync(out):
    import jax

    jax.block_until_ready(out)


def _planned_bytes(compiled) -> float:
    """What XLA planned for a compiled call beyond its arguments: temporaries and outputs.

    JAX's allocator peak cannot be reset, so within a long-lived worker it only shows a variant
    that needs more than every one before it; the compiled program's own memory analysis is exact
    for each variant, on any device."""
    stats = compiled.memory_analysis()
    if stats is None:
        return math.nan
    return float(stats.temp_size_in_bytes + stats.output_size_in_bytes)


backend = Backend(
    name="jax",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("jax"),
    setup=setup,
    devices=_devices,
    asarray=_asarray,
    to_numpy=np.asarray,
    to_float=float,
    sync=_sync,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=_solvers,
    compile=_compile,
    step=_step,
    fuse=_fuse,
    planned_bytes=_planned_bytes,
    # every autodiff variant is jitted, as the analytic formula is; the whole-loop solve with its own
    pairs={**dict.fromkeys(("jit", "fwd-rev", "rev-rev", "hessian", "jacrev-jacrev", "jacfwd", "jacrev", "nested-grad",
                            "nested-jvp", "jet", "asdex"), "jit"), "while-loop": "while-loop"},
    kinds=tuple(_AUTODIFF),
    accelerators=("cuda",),
    data_copies=3,  # the numpy instance, the device copy and the generator's temporaries
    colour="tab:purple",
    packages=("jax", "jaxlib"),
    imports=("jax", "jax.numpy"),
)
