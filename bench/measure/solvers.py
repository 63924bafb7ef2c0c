"""The solve task's solvers: gradient descent (bench.measure.gd, the seed's), truncated Newton (Newton-CG)
and Newton with the dense Hessian, each one loop for every backend, run to f(x_k) - f* <= eps.

A Newton-type loop calls a few fused pieces, each made of the backend's own callables and compiled
by the backend (one jitted program each in JAX; eager elsewhere), and reads a few scalars on the host
per step to decide, as a hand-written loop does (the descent reads f every iteration). Between the
pieces a few array operations run on their own (CG's start z = 0, d = -g; a fallback direction):
three small dispatches per outer iteration, the same for every variant of a backend.

- evaluate(x, data) -> (g, [f, g.g, |g|_1]): the mode's value_and_grad (the analytic variants step
  with the hand-derived gradient, the autodiff ones with autodiff's: each mode as its users run it);
- trial(x, p, t, data) -> (x + t p, g, [f, g.g, |g|_1]) at the trial point: a line-search step
  that, once accepted, has already paid for the next iteration's gradient;
- cg_step(x, g, z, r, d, rr, data) -> (z', r', d', r'.r', [d.Hd, |r'|_1, g.z']): one conjugate-
  gradient iteration on H p = -g, its one HVP the variant timed (newton-cg);
- direction(x, g, data) -> (p, [g.p]): p = -H^{-1} g by a dense LU solve of the variant's Hessian
  (newton; the array API's linalg.solve, the same in every framework), or by scipy's sparse LU of the
  variant's sparse Hessian on the host (newton-sparse: `sparse_direction`).

Newton-CG is scipy.optimize.minimize(method="Newton-CG")'s inner loop (Nocedal and Wright's
Algorithm 7.1): CG from 0 until |r|_1 <= min(0.5, sqrt(|g|_1)) |g|_1, at most 20 dim iterations,
stopping at curvature <= 3 eps64 and at negative curvature (steepest descent, scaled, if that is the
first). Where CG runs its 20 dim iterations without meeting the tolerance, scipy stops the whole
solve ("the Hessian is not positive definite"); here the step goes on with the iterate CG reached,
and a run that gets nowhere ends at max_iter or stalls (`not_converged`, with why). Where scipy
searches for a step with the strong Wolfe conditions, both loops here backtrack
from t = 1 (halving, Armijo's sufficient decrease with c1 = 1e-4): the unit step is what Newton's
method takes near the solution, and it is what scipy's search accepts there too.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from backends._protocol import DIVERGENCE_FACTOR


@dataclass(frozen=True)
class Solver:
    name: str
    kind: str  # the derivative kind whose variants it times (its memory and size limits are that kind's)
    title: str  # what the report calls it
    summary: str


SOLVERS: dict[str, Solver] = {s.name: s for s in (
    Solver("gd", "grad", "gradient descent", "gradient descent at step 1/L, the seed's experiment"),
    Solver("newton-cg", "hvp", "Newton-CG",
           "truncated Newton: conjugate gradients on H p = -g, one HVP each, then a line search"),
    Solver("newton", "hess", "Newton", "Newton with the dense Hessian: a linear solve per step, then a line search"),
    Solver("newton-sparse", "sparse_hess", "Newton (sparse)",
           "Newton with the sparse Hessian: a sparse LU solve per step (scipy's SuperLU), then a line search"),
)}
DEFAULT_SOLVERS = ("gd",)
ARMIJO_C1 = 1e-4
BACKTRACKS = 40  # halvings of the step before the line search gives up (t = 2^-40)
CURVATURE_ULPS = 3  # scipy's: a curvature below 3 machine epsilons (of the solve's dtype) ends CG


def measured_kind(task: str, derivative: str) -> str:
    """The derivative kind a cell times: its own for eval; its solver's for solve (the solve task's
    "newton" is Newton's method, not the eval kind of that name)."""
    return SOLVERS[derivative].kind if task == "solve" else derivative


class Run(NamedTuple):
    """One run to eps: outer iterations, f at the last iterate, status (bench.core.schema), the calls it
    made, and why it stopped where the status alone does not say."""

    iterations: int
    f: float
    status: str
    grad_calls: int
    hvp_calls: int = 0
    hess_calls: int = 0
    why: str = ""


def pieces(kind: str, value_and_grad: Callable, variant: Callable) -> dict[str, Callable]:
    """The uncompiled pieces a Newton-type loop of `kind` ("hvp": newton-cg, "hess": newton) calls."""
    from problems._xp import array_namespace

    def evaluate(x, data):
        xp = array_namespace(x)
        f, g = value_and_grad(x, data)
        return g, xp.stack((f, xp.sum(g * g), xp.sum(xp.abs(g))))

    def trial(x, p, t, data):
        x_new = x + t * p
        g, values = evaluate(x_new, data)
        return x_new, g, values

    def cg_step(x, g, z, r, d, rr, data):
        xp = array_namespace(x)
        hd = variant(x, d, data)
        curvature = xp.sum(d * hd)
        alpha = rr / curvature
        z, r = z + alpha * d, r + alpha * hd
        rr_new = xp.sum(r * r)
        return z, r, -r + (rr_new / rr) * d, rr_new, xp.stack((curvature, xp.sum(xp.abs(r)), xp.sum(g * z)))

    def direction(x, g, data):
        xp = array_namespace(x)
        h = variant(x, data)
        p = -xp.linalg.solve(xp.reshape(h, (g.shape[0], g.shape[0])), g)
        return p, xp.stack((xp.sum(g * p),))

    inner = {"hvp": {"cg_step": cg_step}, "hess": {"direction": direction}, "sparse_hess": {}}[kind]
    return {"evaluate": evaluate, "trial": trial, **inner}


def sparse_direction(values: Callable, pattern, b, device: str) -> Callable:
    """direction(x, g, data) -> (p, [g.p]) for Newton with a sparse Hessian: the variant's nonzeros (compiled,
    on the device) read to the host and solved there by scipy's sparse LU (SuperLU, COLAMD ordering), the
    same solver for every backend: no array API has a sparse solve. The nonzeros' conversion to CSC is
    part of the step, as it is for anyone who solves with them."""
    from scipy.sparse.linalg import spsolve

    def direction(x, g, data):
        gradient = b.to_numpy(g)
        p = (-spsolve(pattern.matrix(b.to_numpy(values(x, data))).tocsc(), gradient)).astype(gradient.dtype)
        return b.asarray(p, device), b.asarray(np.array([gradient @ p]), device)

    return direction


def _stop(k: int, f: float, f_star: float, eps: float, gap0: float, max_iter: int, deadline: float) -> str:
    gap = f - f_star
    if gap <= eps:
        return "ok"
    if not math.isfinite(gap):
        return "nan"
    if gap > DIVERGENCE_FACTOR * (1.0 + abs(gap0)):
        return "diverged"
    if k >= max_iter:
        return "not_converged"
    if time.perf_counter() > deadline:
        return "timeout"
    return ""


def newton_type(kind: str, fns: dict[str, Callable], x0: Any, data: dict, *, read: Callable[[Any], np.ndarray],
                steps: list, f_star: float, eps: float, max_iter: int, max_time_s: float = math.inf,
                on_iterate: Callable[[Any, float], None] | None = None,
                curvature_eps: float = CURVATURE_ULPS * float(np.finfo(np.float64).eps)) -> Run:
    """Newton-CG (kind "hvp") or Newton (kind "hess") from x0 until f - f* <= eps, with the compiled
    pieces `fns`; `read` brings a piece's scalars to the host; `steps` holds the line search's trial
    steps 1, 1/2, 1/4, ... (STEPS) as the backend's arrays, converted once as the descent's step size is.
    `on_iterate(x, t)`: called with each accepted iterate and its step (the tests' cross-check)."""
    deadline = time.perf_counter() + max_time_s
    x = x0
    g, values = fns["evaluate"](x, data)
    f, gg, g1 = read(values)
    calls = {"grad_calls": 1, "hvp_calls": 0, "hess_calls": 0}
    gap0, k = f - f_star, 0
    while True:
        status = _stop(k, f, f_star, eps, gap0, max_iter, deadline)
        if status:
            return Run(k, f, status, **calls)
        if kind == "hvp":
            p, slope = _truncated_newton_direction(fns["cg_step"], x, g, values[1], gg, g1, data, read, calls,
                                                   curvature_eps)
            if not math.isfinite(slope):
                return Run(k, f, "nan", **calls,
                           why="a conjugate-gradient step's curvature or direction was not finite")
        else:
            p, direction_values = fns["direction"](x, g, data)
            calls["hess_calls"] += 1
            (slope,) = read(direction_values)
            if not slope < 0:  # not a descent direction (an indefinite Hessian): steepest descent
                p, slope = -g, -gg
        for t, step in zip(STEPS, steps):
            x_new, g_new, values = fns["trial"](x, p, step, data)
            calls["grad_calls"] += 1
            f_new, gg_new, g1_new = read(values)
            if f_new <= f + ARMIJO_C1 * t * slope:
                break
        else:
            return Run(k, f, "not_converged", **calls,
                       why=f"the line search found no decrease along the direction in {len(STEPS)} halvings")
        if not f_new < f and f_new - f_star > eps:  # stationary where f* is not: a nonconvex f's other minimum
            return Run(k + 1, f_new, "not_converged", **calls,
                       why=f"stalled at f - f* = {f_new - f_star:.3g} > eps: a step no longer decreased f, at a "
                           "stationary point other than the minimum f* refers to")
        x, g, f, gg, g1, k = x_new, g_new, f_new, gg_new, g1_new, k + 1
        if on_iterate is not None:
            on_iterate(x, t)


STEPS = tuple(0.5**i for i in range(BACKTRACKS))  # the line search's trial steps: 1, 1/2, 1/4, ...


def _truncated_newton_direction(cg_step, x, g, rr, gg: float, g1: float, data, read, calls: dict,
                                curvature_eps: float):
    """CG on H p = -g from p = 0, as scipy's Newton-CG: (p, g.p). rr: g.g as the backend's 0-d
    array (what cg_step takes), gg and g1: g.g and |g|_1 on the host."""
    termination = min(0.5, math.sqrt(g1)) * g1
    z, r, d = g * 0.0, g, -g
    gz, r1 = 0.0, g1
    for i in range(20 * g.shape[0]):
        if r1 <= termination:
            break
        z_new, r_new, d_new, rr_new, values = cg_step(x, g, z, r, d, rr, data)
        calls["hvp_calls"] += 1
        curvature, r1_new, gz_new = read(values)
        if not math.isfinite(curvature):  # a NaN HVP: no direction (the caller reports it)
            return z, math.nan
        if 0 <= curvature <= curvature_eps:
            break
        if curvature < 0:
            if i == 0:  # steepest descent, scaled by the curvature found: scipy's fallback
                scale = gg / curvature
                return g * scale, scale * gg
            break
        z, r, d, rr, r1, gz = z_new, r_new, d_new, rr_new, r1_new, gz_new
    return z, gz
