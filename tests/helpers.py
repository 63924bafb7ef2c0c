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


def converted(b, inst, *arrays):
    data = {k: b.asarray(v, "cpu") if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
    return (data, *[b.asarray(np.asarray(a, dtype=np.float64), "cpu") for a in arrays])
