"""Small array-API helpers the formulas share (each works on numpy, JAX, torch and autograd)."""
from __future__ import annotations

import types

import array_api_compat

_NAMESPACES: dict[tuple[type, ...], object] = {}
# array types array-api-compat does not know -> the namespace a backend registered for them
_REGISTERED: dict[type, object] = {}


def register_namespace(array_type: type, namespace) -> None:
    """Let the formulas run on an array library that array-api-compat does not cover (TensorFlow):
    arrays of `array_type` (and its subclasses) get `namespace`, which provides the array API's names
    the formulas use. A backend registers its library's namespace in its setup."""
    _REGISTERED[array_type] = namespace
    _NAMESPACES.clear()


def device(x):
    """The array's device, as array-api-compat gives it; None for a registered library's arrays
    (their namespace places arrays itself and ignores `device=`)."""
    if any(isinstance(x, t) for t in _REGISTERED):
        return None
    return array_api_compat.device(x)


def array_namespace(*xs):
    """The namespace of the arrays' library, as array_api_compat.array_namespace finds it, but
    cheaper inside timed code: found once per combination of types and remembered, and the
    library's own functions wherever they are the array API's.

    Every formula asks at each call, so compat's lookup (0.7 us for a torch tensor, 0.9 us for
    a numpy array here) and compat's wrappers (torch: xp.sum 1.40 us against torch.sum 1.04 us,
    xp.max 1.19 against 0.71 at n = 10) landed inside the timed analytic formulas and inside
    autodiff's f, unevenly (JAX traces them away). numpy 2 is an array-API namespace itself;
    torch's own functions serve for every name the formulas use but max and min (torch.max
    with an axis returns (values, indices): torch.amax and torch.amin are the array API's).
    """
    key = tuple(map(type, xs))
    found = _NAMESPACES.get(key)
    if found is None:
        registered = [ns for x in xs for t, ns in _REGISTERED.items() if isinstance(x, t)]
        found = registered[0] if registered else _native(array_api_compat.array_namespace(*xs))
        _NAMESPACES[key] = found
    return found


# torch functions that are the array API's for every use the formulas make of them (axis and
# keepdims are accepted as aliases of dim and keepdim)
TORCH_NATIVE = ("sum", "mean", "exp", "log", "sqrt", "tanh", "reshape", "zeros_like", "ones_like", "logaddexp",
                "stack", "concat", "squeeze", "swapaxes", "eye", "zeros", "arange")


def _native(compat):
    import numpy as np

    if compat.__name__ == "array_api_compat.numpy" and hasattr(np, "__array_api_version__"):  # numpy 2
        return np
    if compat.__name__ == "array_api_compat.torch":
        import torch

        names = {name: getattr(compat, name) for name in dir(compat) if not name.startswith("__")}
        names.update({name: getattr(torch, name) for name in TORCH_NATIVE}, max=torch.amax, min=torch.amin)
        return types.SimpleNamespace(__name__=compat.__name__, **names)
    return compat


def eye_like(x):
    """The n x n identity with x's dtype and device."""
    xp = array_namespace(x)
    if xp.__name__.startswith("autograd."):  # autograd's traced arrays carry no device
        return xp.eye(x.shape[0], dtype=x.dtype)
    return xp.eye(x.shape[0], dtype=x.dtype, device=device(x))


def outer(a, b):
    # a[:, None] * b[None, :]: indexing with None is in the array API and traceable by autograd.
    return a[:, None] * b[None, :]


def horner(coef, y):
    """sum_k coef[k] y^k by Horner's rule; the loop's length is coef's (static) shape."""
    xp = array_namespace(y)
    acc = xp.zeros_like(y)
    for k in range(coef.shape[0] - 1, -1, -1):
        acc = acc * y + coef[k]
    return acc


def separate(f, grad):
    """value_and_grad for problems whose f and gradient share no work worth sharing."""

    def value_and_grad(x, data):
        return f(x, data), grad(x, data)

    return value_and_grad


def linalg(x):
    """The linalg namespace for x's library.

    Under autograd tracing, array_namespace gives autograd.numpy.numpy_wrapper, whose `linalg`
    attribute is plain numpy's (no gradients: det fails on traced arrays); autograd's own
    differentiable linalg is autograd.numpy.linalg.
    """
    xp = array_namespace(x)
    if xp.__name__.startswith("autograd."):
        import autograd.numpy.linalg as autograd_linalg

        return autograd_linalg
    return xp.linalg


def _under_autograd(arrays) -> bool:
    return any(array_namespace(a).__name__.startswith("autograd.") for a in arrays)


def concat(arrays, axis=0):
    """xp.concat that autograd can trace.

    autograd wraps numpy's `concat` as a primitive that unboxes only top-level arguments, so a list
    holding traced arrays becomes a numpy object array (wrong dtype, no gradient); its
    `concatenate` is list-aware. Mixed lists (data and traced arrays) are fine either way.
    """
    if _under_autograd(arrays):
        import autograd.numpy as anp

        return anp.concatenate(arrays, axis=axis)
    return array_namespace(*arrays).concat(arrays, axis=axis)


def matrix_transpose(x):
    """Swap the last two axes; autograd defines no gradient for permute_dims / matrix_transpose."""
    xp = array_namespace(x)
    if xp.__name__.startswith("autograd."):
        return xp.swapaxes(x, -1, -2)
    return xp.matrix_transpose(x)
