"""Enzyme through Enzyme-JAX (`enzyme-ad`): automatic differentiation after optimisation, beside JAX's own.

The problem's f, written once against the array API, runs as a JAX function under
`enzyme_ad.jax.enzyme_jax_ir()`: JAX sees one opaque primitive, and every derivative JAX asks of it
is Enzyme's, differentiated from the optimised MLIR of f. The analytic side is JAX's jitted formula,
as the `jax` backend's `jit`, so Enzyme's ratio divides by the same compiled formula JAX's does.

Autodiff variants, each jitted whole and compiled ahead of time (compile timed apart, caches
cleared, as `jax`): the gradient by Enzyme's reverse mode (`rev`); the HVP forward over reverse
(`fwd-rev`: Enzyme's forward mode over its own gradient, itself wrapped by `enzyme_jax_ir`) and
reverse over reverse (`rev-rev`); the dense Hessian as one forward-over-reverse HVP per column in a
`lax.map` (`fwd-rev-map`: Enzyme-JAX 0.0.16 has no batching rule, so `jax.hessian`'s vmap of HVPs
is refused with "Batching rule for 'enzyme_primal' not implemented"); the Newton direction of a
diagonal Hessian, grad / (H 1), by one forward-over-reverse pass. Beside each, in the same worker
and the same rounds, JAX's own autodiff of the same f by the same algorithm (`jax-` and the same
name): the user's question, is Enzyme faster than what JAX does already, is their paired ratio
(`versus`, bench.analysis.summary.versus_ratios).

What Enzyme cannot compile (a primitive without a derivative rule, a batching rule it lacks) is a
`skipped` row quoting Enzyme. Not selected unless asked for (`--backends enzyme`, or the `enzyme`
preset): an optional extra (`pip install -e '.[enzyme]'`), whose wheel exists for Python 3.11 on
Linux x86-64 and macOS arm64.
"""
from __future__ import annotations

import re
import traceback

from . import jax_backend as jax_
from ._protocol import Backend, Infeasible, has_module

# Enzyme's variant -> JAX's own, by the same algorithm (JAX's are named `jax-` and the same name)
RIVAL = "jax-"


def setup(threads: int, device: str = "cpu") -> dict:
    from importlib.metadata import version

    return dict(jax_.setup(threads, device), enzyme_ad=version("enzyme-ad"))


def _f(problem):
    from enzyme_ad.jax import enzyme_jax_ir

    return enzyme_jax_ir()(problem.f)


def _gradient(f):
    """Reverse mode of f, as a function JAX can differentiate again only through Enzyme: the
    gradient itself wrapped by `enzyme_jax_ir`, so that a second derivative is Enzyme over Enzyme."""
    import jax
    from enzyme_ad.jax import enzyme_jax_ir

    return enzyme_jax_ir()(jax.grad(f))


def _derivatives(f, grad_f):
    """{kind: {variant: function}} for one f and its gradient (Enzyme's or JAX's)."""
    import jax
    import jax.numpy as jnp

    def fwd_rev(x, v, data):
        return jax.jvp(lambda y: grad_f(y, data), (x,), (v,))[1]

    def rev_rev(x, v, data):
        return jax.grad(lambda y: jnp.vdot(grad_f(y, data), v))(x)

    def hessian(x, data):  # one HVP per column, in sequence (no vmap: see the module's docstring)
        columns = jax.lax.map(lambda e: fwd_rev(x, jnp.reshape(e, x.shape), data), jnp.eye(x.size, dtype=x.dtype))
        return jnp.reshape(columns, (x.size, x.size))

    def newton(x, data):
        g, hv = jax.jvp(lambda y: grad_f(y, data), (x,), (jnp.ones_like(x),))
        return g / hv

    return {"grad": {"rev": _Refusing(jax.jit(jax.grad(f)))},
            "hvp": {"fwd-rev": _Refusing(jax.jit(fwd_rev)), "rev-rev": _Refusing(jax.jit(rev_rev))},
            "hess": {"fwd-rev-map": _Refusing(jax.jit(hessian))},
            "newton": {"fwd-rev": _Refusing(jax.jit(newton))}}


def _functions(problem, mode):
    import jax

    if mode == "analytic":
        return {d: {"jit": jax.jit(getattr(problem, d))} for d in problem.derivatives}
    f = _f(problem)
    enzyme = _derivatives(f, _gradient(f))
    own = _derivatives(problem.f, jax.grad(problem.f))
    return {d: {**enzyme[d], **{RIVAL + name: fn for name, fn in own[d].items()}}
            for d in problem.derivatives if d in enzyme}


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:
        return {}
    import jax

    return {"jit": problem.value_and_grad} if mode == "analytic" else {"rev": jax.value_and_grad(_f(problem))}


def _solvers(problem, mode):
    if problem.value_and_grad is None:
        return {}
    (value_and_grad,) = _value_and_grad(problem, mode).values()
    return {"while-loop": _Refusing(jax_._while_loop_solver(value_and_grad))}


def _reason(exc: BaseException) -> str:
    """Enzyme's own words, shortened: the operations it has no derivative for (a LAPACK call of a
    solve or eigh: "could not compute the adjoint for this operation ... lapack_dgetrf_ffi"), else the
    exception's first line."""
    words = str(exc)
    missing = dict.fromkeys(re.findall(r'could not compute the (\w+) for this operation.*?call_target_name = "([^"]+)"',
                                       words))
    if missing:
        return "; ".join(f"could not compute the {what} of {target}" for what, target in missing)
    lines = words.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _from_enzyme(exc: BaseException) -> bool:
    """Raised within Enzyme-JAX's code, or by JAX about Enzyme's primitives (JAX drops its own frames
    from a traceback, so a batching rule it lacks shows only in the words)."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if "enzyme" in str(exc).lower() or any("enzyme_ad" in frame.filename
                                                for frame in traceback.extract_tb(exc.__traceback__)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _Refusing:
    """A jitted function whose failures inside Enzyme-JAX (a primitive without a derivative rule, a
    batching rule it lacks) raise Infeasible quoting Enzyme, when called or compiled: a `skipped` row.
    Any other failure is raised as it is."""

    def __init__(self, fn):
        self.fn = fn

    def _refused(self, call):
        try:
            return call()
        except Exception as exc:
            if not _from_enzyme(exc):
                raise
            from importlib.metadata import version

            raise Infeasible(f"Enzyme-JAX {version('enzyme-ad')} cannot differentiate it: {_reason(exc)}") from None

    def __call__(self, *args):
        return self._refused(lambda: self.fn(*args))

    def lower(self, *args):  # a jitted function's ahead-of-time path, as jax.jit's
        return self._refused(lambda: self.fn.lower(*args))



def _compile(fn, args):
    """jax's compile (timed, caches cleared); what Enzyme refuses is Infeasible."""
    if isinstance(fn, _Refusing):
        return fn._refused(lambda: jax_._compile(fn.fn, args))
    return jax_._compile(fn, args)


def _step(value_and_grad):
    return _Refusing(jax_._step(value_and_grad))


VARIANTS = ("rev", "fwd-rev", "rev-rev", "fwd-rev-map")

backend = Backend(
    name="enzyme",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("enzyme_ad"),
    setup=setup,
    devices=lambda: ["cpu"],
    asarray=jax_._asarray,
    to_numpy=jax_.backend.to_numpy,
    to_float=float,
    sync=jax_._sync,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=_solvers,
    compile=_compile,
    step=_step,
    fuse=jax_._fuse,
    planned_bytes=jax_._planned_bytes,
    # Enzyme's and JAX's autodiff alike are jitted whole, as the analytic formula is
    pairs={**dict.fromkeys(VARIANTS + tuple(RIVAL + v for v in VARIANTS), "jit"), "while-loop": "while-loop"},
    versus={v: RIVAL + v for v in VARIANTS},
    kinds=("grad", "hvp", "hess", "newton"),
    data_copies=3,
    colour="tab:olive",
    checked_by="jax",  # the formulas of the kinds Enzyme is not asked for (jac, dk): by JAX's autodiff
    packages=("enzyme-ad", "jax", "jaxlib"),
    presets=("enzyme",),
)
