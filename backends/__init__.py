"""Backend adapters: numpy, jax, torch, autograd, tensorflow, torch-compile, enzyme, and any an installed package
registers.

A package adds a backend by an entry point in the group `nablabench.backends` whose object is a
`Backend` record (see backends/_protocol.py). Heavy frameworks are imported only when used.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from ._protocol import DERIVATIVES, MODES, Backend, Infeasible
from .autograd_backend import backend as _autograd
from .enzyme_backend import backend as _enzyme
from .jax_backend import backend as _jax
from .numpy_backend import backend as _numpy
from .tensorflow_backend import backend as _tensorflow
from .torch_backend import backend as _torch
from .torch_compile_backend import backend as _torch_compile

ENTRY_POINTS = "nablabench.backends"
_REGISTRY: dict[str, Backend] = {b.name: b for b in (_numpy, _jax, _torch, _autograd, _tensorflow, _torch_compile,
                                                     _enzyme)}
_SOURCES: dict[str, str] = {name: "built-in" for name in _REGISTRY}
_loaded = False


def register(backend: Backend, source: str = "registered") -> None:
    """Add a backend; its name must be new."""
    if not isinstance(backend, Backend):
        raise TypeError(f"Expected a backends.Backend record; got {type(backend).__name__}.")
    if "autodiff" in backend.modes and not backend.pairs:
        raise ValueError(f"Backend `{backend.name}` ({source}) has an autodiff mode but declares no pairs: say which "
                         "analytic variant each autodiff variant is divided by (backends.Backend.pairs).")
    if backend.name in _REGISTRY and _REGISTRY[backend.name] is not backend:
        raise ValueError(f"Backend `{backend.name}` ({source}) is already defined ({_SOURCES[backend.name]}).")
    _REGISTRY[backend.name], _SOURCES[backend.name] = backend, source


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for point in entry_points(group=ENTRY_POINTS):
        register(point.load(), source=f"entry point {point.value} ({point.dist.name if point.dist else '?'})")


def names() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def get(name: str) -> Backend:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown backend `{name}`; expected one of: {', '.join(names())}.") from None


def source(name: str) -> str:
    """Where a backend comes from: built-in, or the entry point that registered it."""
    get(name)
    return _SOURCES[name]


__all__ = ["DERIVATIVES", "MODES", "Backend", "Infeasible", "get", "names", "register", "source"]
