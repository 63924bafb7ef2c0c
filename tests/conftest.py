"""Shared fixtures: the backends installed here (others skip with the reason), float64 forced."""
from __future__ import annotations

import numpy as np
import pytest

import backends
import problems

_READY: dict[str, object] = {}


def _ready(name: str):
    """The backend after its one-time setup (JAX x64 on before any JAX array exists)."""
    b = backends.get(name)
    ok, reason = b.available()
    if not ok:
        pytest.skip(f"backend {name} unavailable: {reason}")
    if name not in _READY:
        b.setup(1)
        _READY[name] = b
    return b


@pytest.fixture(params=backends.names())
def backend(request):
    return _ready(request.param)


@pytest.fixture(params=problems.names())
def problem(request):
    return problems.get(request.param)


def converted(b, inst, *arrays):
    data = {k: b.asarray(v, "cpu") if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
    return (data, *[b.asarray(np.asarray(a, dtype=np.float64), "cpu") for a in arrays])
