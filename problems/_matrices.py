"""Dense matrices with an exactly known spectrum, built in O(n^2).

A QR or SVD of a random n x n matrix costs O(n^3) (about 40 s at n = 10^4 here). Two Householder
reflections H = I - 2 u u^T (u of unit norm) are orthogonal, so H1 diag(s) H2 has singular values
exactly s, and H diag(lam) H is symmetric with eigenvalues exactly lam. Expanding the products
gives a diagonal plus three outer products: O(n^2) time, no n x n temporaries beyond the result.
"""
from __future__ import annotations

import numpy as np


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.standard_normal(n)
    return u / np.linalg.norm(u)


def spectrum(n: int, low: float, high: float) -> np.ndarray:
    """n values spread evenly over [low, high], largest first (exactly low and high at the ends)."""
    return np.linspace(high, low, n) if n > 1 else np.array([high])


def with_singular_values(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dense A = (I - 2uu^T) diag(s) (I - 2ww^T), whose singular values are exactly s."""
    u, w = _unit(rng, s.size), _unit(rng, s.size)
    su, sw = s * u, s * w
    # A = S - 2 u (Su)^T - 2 (Sw) w^T + 4 (u^T S w) u w^T = S + [u, Sw] @ [4(u^T S w) w - 2 Su, -2 w]^T
    left = np.stack([u, sw], axis=1)
    right = np.stack([4.0 * (su @ w) * w - 2.0 * su, -2.0 * w], axis=1)
    return _plus_diagonal(left @ right.T, s)


def with_eigenvalues(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dense symmetric A = H diag(lam) H with H = I - 2uu^T, whose eigenvalues are exactly lam."""
    u = _unit(rng, lam.size)
    lu = lam * u
    # A = L - 2 u (Lu)^T - 2 (Lu) u^T + 4 (u^T L u) u u^T = L + [u, Lu] @ [4(u^T L u) u - 2 Lu, -2 u]^T
    left = np.stack([u, lu], axis=1)
    right = np.stack([4.0 * (u @ lu) * u - 2.0 * lu, -2.0 * u], axis=1)
    return _plus_diagonal(left @ right.T, lam)


def householder_similar(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """H T H with H = I - 2uu^T: similar to T (same eigenvalues), dense, in O(n^2); T is overwritten."""
    u = _unit(rng, t.shape[0])
    tu, ut = t @ u, u @ t
    # H T H = T - 2 u (u^T T) - 2 (T u) u^T + 4 (u^T T u) u u^T
    t -= 2.0 * np.outer(u, ut)
    t -= np.outer(2.0 * tu - 4.0 * (u @ tu) * u, u)
    return t


def _plus_diagonal(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    # One n x n allocation (the rank-2 product); the diagonal is added in place.
    a.flat[:: a.shape[0] + 1] += d
    return a


def seeded_rng(n: int, seed: int, salt: int) -> np.random.Generator:
    """The generator for one problem's instance of size n: each problem has its own salt."""
    return np.random.default_rng([seed, n, salt])


def unit_vector(n: int, seed: int, salt: int) -> np.ndarray:
    """A seeded random direction of norm 1 (a start point away from the origin)."""
    return _unit(seeded_rng(n, seed, salt), n)
