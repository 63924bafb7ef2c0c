"""Helpers the tests import: backends after their one-time setup, instances converted to them."""
from __future__ import annotations

import numpy as np
import pytest

import backends

from bench.measure.check import sizes_for

_READY: dict[str, object] = {}


def ready(name: str):
    """The backend after its one-time setup (JAX x64 on before any JAX array exists)."""
    b = backends.get(name)
    ok, reason = b.available()
    if not ok:
        pytest.skip(f"backend {name} unavailable: {reason}")
    if name not in _READY:
        b.setup(1)
        _READY[name] = b
    return b


def converted(b, inst, *arrays, device="cpu"):
    data = {k: b.asarray(v, device) if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
    return (data, *[b.asarray(np.asarray(a, dtype=np.float64), device) for a in arrays])


def call(derivative, fn, x, v, data):
    """Every derivative takes (x, data) but the HVP, which takes (x, v, data)."""
    return fn(x, v, data) if derivative == "hvp" else fn(x, data)


def check_every_variant(backend, problem, n, device="cpu", seed=1, rtol=1e-10):
    """Every variant of every derivative (and value_and_grad) of `backend` against numpy's analytic
    result at the problem's evaluation point; returns {mode: the derivative kinds it checked, or
    whose every variant declined the size (backends.Infeasible)}."""
    (n,) = sizes_for(problem, (n,))
    inst = problem.instance(n, seed=seed)
    x_np, v_np = problem.evaluation_point(n, seed=seed)
    data, x, v = converted(backend, inst, x_np, v_np, device=device)
    reference = {d: call(d, getattr(problem, d), x_np, v_np, inst.data) for d in problem.derivatives}
    covered: dict[str, set[str]] = {}
    for mode in backend.modes:
        for derivative, variants in backend.functions(problem, mode).items():
            for variant, fn in variants.items():
                try:
                    out = call(derivative, fn, x, v, data)
                except backends.Infeasible:  # nested autodiff past its declared order
                    covered.setdefault(mode, set()).add(derivative)
                    continue
                backend.sync(out)
                out = backend.to_numpy(out)
                assert out.dtype == np.float64, (backend.name, mode, derivative, variant)
                if out.shape != np.shape(reference[derivative]):  # autodiff Hessian of f(X): (n, n, n, n)
                    out = out.reshape(np.shape(reference[derivative]))
                label = f"{backend.name} {device} {mode} {derivative} {variant}"
                if derivative == "dk":
                    # P_k(tanh x) cancels digits near its roots, and nested autodiff rounds off more
                    # with each order: dk is held, as in the sweep, to 1e-8 in norm.
                    error = np.linalg.norm(out - reference[derivative]) / np.linalg.norm(reference[derivative])
                    assert error < 1e-8, (label, error)
                else:
                    np.testing.assert_allclose(out, reference[derivative], rtol=rtol, atol=1e-12, err_msg=label)
                covered.setdefault(mode, set()).add(derivative)
        for variant, vg in backend.value_and_grad(problem, mode).items():
            # through the gradient-descent step the sweep runs (jitted in JAX): x - 1 * grad
            try:
                value, x_next = backend.step(vg)(x, data, 1.0)
            except backends.Infeasible:  # XLA without a kernel the formula needs (TensorFlow's det)
                continue
            assert backend.to_float(value) == pytest.approx(float(reference["f"]), rel=1e-12), variant
            g = backend.to_numpy(x) - backend.to_numpy(x_next)
            np.testing.assert_allclose(g.reshape(np.shape(reference["grad"])), reference["grad"], rtol=max(rtol, 1e-8),
                                       atol=1e-12 * (1 + np.abs(backend.to_numpy(x)).max()),
                                       err_msg=f"{backend.name} {device} {mode} value_and_grad {variant}")
    return covered


def expected_kinds(backend, problem) -> dict[str, set[str]]:
    """What check_every_variant must cover: every kind the problem defines in the analytic mode,
    and those the backend's autodiff implements (f has no autodiff variant)."""
    out = {}
    for mode in backend.modes:
        kinds = set(problem.derivatives) if mode == "analytic" else set(problem.derivatives) & set(backend.kinds)
        if kinds:
            out[mode] = kinds
    return out


def session_problem(name: str = "session_quad", *, hvp_scale: float = 1.0):
    """A problem made the way a notebook cell makes one: its functions are locals, importable from
    no module, so that another process can get them only by value (problems.define). f = 1/2 sum d x^2;
    `hvp_scale` != 1 makes its HVP wrong."""
    from array_api_compat import array_namespace

    from problems import Instance, Problem

    def f(x, data):
        xp = array_namespace(x)
        return 0.5 * xp.sum(data["d"] * x * x)

    def grad(x, data):
        return data["d"] * x

    def hvp(x, v, data):
        return hvp_scale * data["d"] * v

    def instance(n, seed=0):
        return Instance(name, n, seed, x0=np.ones(n), data={"d": np.linspace(1.0, 2.0, n)})

    return Problem(name=name, f=f, grad=grad, hvp=hvp, instance=instance, dim=lambda n: n)


def interruptible() -> None:
    """A child process's preexec_fn: Ctrl-C at its default. A shell's background job (a CI script
    started with `&`) starts its children with SIGINT ignored, which Python keeps at startup: the run
    would not see a test's SIGINT and would run to its end."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
