"""Every backend's analytic and autodiff variants against numpy's analytic formulas."""
from __future__ import annotations

import numpy as np
import pytest

import backends
from helpers import converted


@pytest.mark.parametrize("n", [1, 7, 64])
def test_every_variant_matches_numpy_analytic(backend, problem, n):
    if problem.dim(n) > 4 * n:  # a matrix variable: n x n; keep autodiff Hessians small
        n = max(1, round(n ** 0.5))
    inst = problem.instance(n, seed=1)
    x_np, v_np = problem.evaluation_point(n, seed=1)
    data, x, v = converted(backend, inst, x_np, v_np)
    reference = {
        "f": problem.f(x_np, inst.data), "grad": problem.grad(x_np, inst.data),
        "hess": problem.hess(x_np, inst.data), "hvp": problem.hvp(x_np, v_np, inst.data),
    }
    checked = 0
    for mode in backend.modes:
        for derivative, variants in backend.functions(problem, mode).items():
            for variant, fn in variants.items():
                out = fn(x, v, data) if derivative == "hvp" else fn(x, data)
                out = backend.to_numpy(out)
                assert out.dtype == np.float64, (backend.name, mode, derivative, variant)
                if out.shape != np.shape(reference[derivative]):  # autodiff Hessian of f(X): (n, n, n, n)
                    out = out.reshape(np.shape(reference[derivative]))
                np.testing.assert_allclose(out, reference[derivative], rtol=1e-10, atol=1e-12,
                                           err_msg=f"{backend.name} {mode} {derivative} {variant}")
                checked += 1
        for variant, vg in backend.value_and_grad(problem, mode).items():
            value, g = vg(x, data)
            assert backend.to_float(value) == pytest.approx(float(reference["f"]), rel=1e-12), variant
            np.testing.assert_allclose(backend.to_numpy(g), reference["grad"], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{backend.name} {mode} value_and_grad {variant}")
    assert checked >= 3


def test_modes_and_names():
    assert backends.names() == ["autograd", "jax", "numpy", "torch"]
    assert backends.get("numpy").modes == ("analytic",)
    assert backends.get("autograd").modes == ("autodiff",)
    with pytest.raises(ValueError, match="autograd, jax, numpy, torch"):
        backends.get("jaxx")


def test_missing_package_makes_backend_unavailable_with_reason(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    ok, reason = backends.get("torch").available()
    assert not ok and "torch" in reason and "not installed" in reason


def test_jax_computes_in_float64():
    b = pytest.importorskip("jax") and backends.get("jax")
    b.setup(1)
    import jax.numpy as jnp

    assert jnp.asarray(1.0).dtype == jnp.float64
