"""Backend adapters: numpy, jax, torch, autograd. Heavy frameworks are imported only when used."""
from ._protocol import DERIVATIVES, MODES, Backend, Infeasible
from .autograd_backend import backend as _autograd
from .jax_backend import backend as _jax
from .numpy_backend import backend as _numpy
from .torch_backend import backend as _torch

_REGISTRY = {b.name: b for b in (_numpy, _jax, _torch, _autograd)}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown backend `{name}`; expected one of: {', '.join(names())}.") from None


__all__ = ["DERIVATIVES", "MODES", "Backend", "Infeasible", "get", "names"]
