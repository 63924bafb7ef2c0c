"""Helpers the tests import: backends after their one-time setup, instances converted to them."""
from __future__ import annotations

import numpy as np
import pytest

import backends

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


def check_every_variant(backend, problem, n, device="cpu"):
    """Every variant of every derivative (and value_and_grad) of `backend` against numpy's analytic
    result at the problem's evaluation point; returns how many were checked."""
    if problem.dim(n) > 4 * n:  # a matrix variable: n x n; keep autodiff Hessians small
        n = max(1, round(n ** 0.5))
    inst = problem.instance(n, seed=1)
    x_np, v_np = problem.evaluation_point(n, seed=1)
    data, x, v = converted(backend, inst, x_np, v_np, device=device)
    reference = {
        "f": problem.f(x_np, inst.data), "grad": problem.grad(x_np, inst.data),
        "hess": problem.hess(x_np, inst.data), "hvp": problem.hvp(x_np, v_np, inst.data),
    }
    checked = 0
    for mode in backend.modes:
        for derivative, variants in backend.functions(problem, mode).items():
            for variant, fn in variants.items():
                out = fn(x, v, data) if derivative == "hvp" else fn(x, data)
                backend.sync(out)
                out = backend.to_numpy(out)
                assert out.dtype == np.float64, (backend.name, mode, derivative, variant)
                if out.shape != np.shape(reference[derivative]):  # autodiff Hessian of f(X): (n, n, n, n)
                    out = out.reshape(np.shape(reference[derivative]))
                np.testing.assert_allclose(out, reference[derivative], rtol=1e-10, atol=1e-12,
                                           err_msg=f"{backend.name} {device} {mode} {derivative} {variant}")
                checked += 1
        for variant, vg in backend.value_and_grad(problem, mode).items():
            value, g = vg(x, data)
            assert backend.to_float(value) == pytest.approx(float(reference["f"]), rel=1e-12), variant
            np.testing.assert_allclose(backend.to_numpy(g), reference["grad"], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{backend.name} {device} {mode} value_and_grad {variant}")
    return checked
