"""Small array-API helpers the formulas share (each works on numpy, JAX, torch and autograd)."""
from __future__ import annotations

from array_api_compat import array_namespace, device


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
