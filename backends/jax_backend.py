"""JAX: every function jitted, analytic and autodiff alike, compiled ahead of time (timed apart).

float64 needs `jax_enable_x64` before any array exists: `setup` sets it, and the worker calls
setup before anything else touches JAX. Data are passed to jitted functions as arguments, never
closed over (closures over big arrays become constants and slow compilation down).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ._protocol import Backend, has_module

# While-loop status codes, decoded by bench.gd.STATUS_CODES.
_RUNNING, _OK, _NAN, _DIVERGED, _NOT_CONVERGED = 0, 1, 2, 3, 4
DIVERGENCE_FACTOR = 1e6  # same bound as bench.gd.descend


def setup(threads: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "jax_devices": [str(d) for d in jax.devices()]}


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


def _functions(problem, mode):
    import jax
    import jax.numpy as jnp

    if mode == "analytic":
        return {
            "f": {"jit": jax.jit(problem.f)},
            "grad": {"jit": jax.jit(problem.grad)},
            "hess": {"jit": jax.jit(problem.hess)},
            "hvp": {"jit": jax.jit(problem.hvp)},
        }
    grad_f = jax.grad(problem.f)

    def hvp_fwd_rev(x, v, data):  # forward-over-reverse: JAX's recommended HVP
        return jax.jvp(lambda y: grad_f(y, data), (x,), (v,))[1]

    def hvp_rev_rev(x, v, data):  # reverse-over-reverse, as in the seed
        return jax.grad(lambda y: jnp.vdot(grad_f(y, data), v))(x)

    return {
        "grad": {"jit": jax.jit(grad_f)},
        "hvp": {"fwd-rev": jax.jit(hvp_fwd_rev), "rev-rev": jax.jit(hvp_rev_rev)},
        "hess": {"hessian": jax.jit(jax.hessian(problem.f)),  # jacfwd(jacrev)
                 "jacrev-jacrev": jax.jit(jax.jacrev(jax.jacrev(problem.f)))},
    }


def _value_and_grad(problem, mode):
    import jax

    return {"jit": problem.value_and_grad if mode == "analytic" else jax.value_and_grad(problem.f)}


def _step(value_and_grad):
    import jax

    # f and the update fused in one jitted call: one dispatch per iteration.
    def step(x, data, step_size):
        value, g = value_and_grad(x, data)
        return value, x - step_size * g

    return jax.jit(step)


def _solvers(problem, mode):
    (value_and_grad,) = _value_and_grad(problem, mode).values()
    return {"while-loop": _while_loop_solver(value_and_grad)}


def _while_loop_solver(value_and_grad):
    """The whole descent in one jitted lax.while_loop: no host round trip per iteration."""
    import jax
    import jax.numpy as jnp

    def solve(x0, data, step_size, f_star, eps, max_iter):
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

    solve_jit = jax.jit(solve)

    def make(x0, data, step_size, f_star, eps, max_iter):
        args = (x0, data, step_size, f_star, eps, max_iter)
        compiled, compile_s = _compile(solve_jit, args)

        def run():
            k, value, status = jax.block_until_ready(compiled(*args))
            return int(k), float(value), int(status)

        return run, compile_s

    return make


def _compile(fn, args):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _sync(out):
    import jax

    jax.block_until_ready(out)


def _gpu_peak_memory(device: str):
    """JAX's peak counter cannot be reset: the peak is known only if it grows past the old one."""
    if device != "cuda":
        return None
    import jax

    gpu = jax.devices("gpu")[0]
    state = {}

    def stats() -> dict:
        return gpu.memory_stats() or {}

    def reset() -> float:
        state["old_peak"] = stats().get("peak_bytes_in_use", math.nan)
        return float(stats().get("bytes_in_use", math.nan))

    def read() -> float:
        peak = stats().get("peak_bytes_in_use", math.nan)
        return float(peak) if peak > state.get("old_peak", math.inf) else math.nan

    return reset, read


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
    gpu_peak_memory=_gpu_peak_memory,
)
