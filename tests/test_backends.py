"""Every backend's analytic and autodiff variants against numpy's analytic formulas."""
from __future__ import annotations

import numpy as np
import pytest

import backends
from helpers import check_every_variant


@pytest.mark.parametrize("n", [1, 7, 64])
def test_every_variant_matches_numpy_analytic(backend, problem, n):
    assert check_every_variant(backend, problem, n) >= 3


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
