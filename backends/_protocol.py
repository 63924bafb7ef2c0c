"""What a backend adapter provides: one frozen record of plain functions per framework."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from problems._spec import DERIVATIVE_KINDS

Fn = Callable[..., Any]
# derivative name -> variant name -> function with the problem's signature
Functions = dict[str, dict[str, Fn]]

DERIVATIVES = DERIVATIVE_KINDS  # f, grad, hess, hvp, jac, dk: each problem defines some
MODES = ("analytic", "autodiff")


@dataclass(frozen=True)
class Backend:
    """An array library with (optionally) automatic differentiation.

    available() -> (ok, reason): cheap, imports nothing heavy.
    setup(threads, device="cpu") -> info: called once per worker process before any array exists
        (JAX x64, thread pools); returns versions and device facts for the metadata. A CPU worker
        must not start a GPU runtime here (its GPUs are hidden from it anyway).
    devices() -> names this backend can run on here ("cpu", "cuda").
    asarray(a, device) -> the numpy array `a` as this backend's array on `device`, in a's own dtype:
        float32 stays float32 and float64 float64 (JAX's x64 included), integers stay integers; the
        derivatives then compute in the dtype of the arrays they are given, nothing promoted inside a call.
    functions(problem, mode) -> {derivative: {variant: fn}}: the timed callables, for the
        derivative kinds the problem defines. A variant may raise `Infeasible` for a size it
        cannot afford (recorded as `skipped` with the reason, the other variants go on).
    value_and_grad(problem, mode) -> {variant: vg}: what one gradient-descent step calls.
    solvers(problem, mode) -> {variant: solve}: whole-solve variants that run the loop themselves,
        solve(x0, data, step, f_star, eps, max_iter) -> (iterations, f, status code, SOLVE_STATUSES),
        compiled by `compile` like any timed function and checked by the mode's value_and_grad; {} for none.
    compile(fn, args) -> (callable, compile_s or None): ahead-of-time compilation where the
        framework has it (None means: estimate compile time as first call minus steady state).
    step(value_and_grad) -> step(x, data, step_size) -> (f(x), x - step_size * grad): one GD step.
    fuse(fn) -> fn as one program that `compile` compiles, where the framework has such (jax.jit): a
        Newton-type solver's pieces (bench.solvers) are composed of the backend's callables; identity elsewhere.
    gpu_peak_memory(device) -> (reset, read) on a GPU, None on the CPU (resident set is used).
    planned_bytes(compiled) -> the memory a compiled call plans beyond its arguments, where the
        compiler says (XLA's memory analysis); used on a GPU instead of an allocator peak.
    checked_by: for a backend without autodiff, the backend whose autodiff checks its formulas.
    pairs: autodiff variant -> the analytic variant its ratio divides by, of the same execution regime
        (eager with eager, compiled with compiled, a whole-loop solve with a whole-loop solve). Every
        autodiff variant is named (tests/test_backends.py lists them); one that is not is refused when
        a cell would time it, and a backend with an autodiff mode and no pairs is refused at `register`.
    versus: autodiff variant -> another autodiff variant of the same backend it is measured against,
        paired per round (bench.analysis.summary.versus_ratios): Enzyme's derivative against JAX's own
        autodiff of the same f, timed in the same worker and rounds; {} for none.

    What the sweep and the report know about a backend beyond its functions is here too:
    kinds: the derivative kinds its autodiff mode implements (its analytic mode runs whatever a
        problem defines); accelerators: devices beyond the CPU it may use where present ("cuda");
    data_copies: how many copies of an instance's data a worker holds (memory guard); colour: its
        line colour in every figure; packages: distributions whose versions the metadata records;
    presets: None where a run without --backends selects it whatever its preset; else only a run of
        one of these presets does (a framework too slow to start for `make bench`'s time goal).
    imports: modules a worker imports before it is pinned to its CPUs and set up, which an A/B run's
        workers do side by side (bench.sweep.workers); only those whose import reads nothing that
        `setup` sets (torch-compile's inductor and TensorFlow read environment variables their setup sets).
    """

    name: str
    modes: tuple[str, ...]
    available: Callable[[], tuple[bool, str]]
    setup: Callable[..., dict]
    devices: Callable[[], list[str]]
    asarray: Callable[[np.ndarray, str], Any]
    to_numpy: Callable[[Any], np.ndarray]
    to_float: Callable[[Any], float]
    sync: Callable[[Any], None]
    functions: Callable[[Any, str], Functions]
    value_and_grad: Callable[[Any, str], dict[str, Fn]]
    solvers: Callable[[Any, str], dict[str, Fn]]
    compile: Callable[[Fn, tuple], tuple[Fn, float | None]]
    step: Callable[[Fn], Fn]
    fuse: Callable[[Fn], Fn] = lambda fn: fn
    # device -> (reset() -> bytes in use, read() -> peak bytes) for GPU allocators; None: use RSS
    gpu_peak_memory: Callable[[str], tuple[Callable[[], float], Callable[[], float]] | None] = lambda device: None
    planned_bytes: Callable[[Any], float] | None = None
    checked_by: str = ""
    pairs: dict[str, str] = field(default_factory=dict)
    versus: dict[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    data_copies: int = 2
    colour: str = "tab:brown"
    packages: tuple[str, ...] = ()
    presets: tuple[str, ...] | None = None
    imports: tuple[str, ...] = ()


# What a whole-solve variant reports (backends.Backend.solvers), decoded by bench.cells, and
# the bound past which gradient descent has diverged: f - f* > DIVERGENCE_FACTOR * (1 + initial gap).
SOLVE_STATUSES = {1: "ok", 2: "nan", 3: "diverged", 4: "not_converged"}
DIVERGENCE_FACTOR = 1e6


class Infeasible(Exception):
    """A variant declines a size it cannot afford; the message says why (a measured limit)."""


def analytic_functions(problem) -> Functions:
    """The problem's own formulas (`eager`), and, where it has one, the same derivative restructured by
    hand for the memory hierarchy (`fused`: problems._blocks)."""
    return {d: {"eager": getattr(problem, d), **({"fused": problem.fused[d]} if d in problem.fused else {})}
            for d in problem.derivatives}


LACKING = "none"  # the autodiff variant of a kind a framework does not offer: it says so, as a `skipped` row


def lacking(reason: str) -> dict[str, Fn]:
    """{LACKING: a variant that declines with `reason`}: where a framework has no way to a derivative kind
    (sparse autodiff: sparsity detection and colouring), the sweep's row says so instead of leaving a gap."""
    def declines(*args):
        raise Infeasible(reason)

    return {LACKING: declines}


def nested_order_check(backend: str, variant: str, k: int, limits: dict[str, tuple[int, str]]) -> None:
    """Raise Infeasible when nested autodiff of order k is beyond what the variant can afford.

    limits: variant -> (largest order, the measurement that sets it). Nested differentiation
    differentiates the previous level's whole program, so its cost grows exponentially in k.
    """
    limit, measured = limits[variant]
    if k > limit:
        raise Infeasible(f"{backend} {variant}: order k={k} > {limit}; nested autodiff grows "
                         f"exponentially in k ({measured})")


def eager_step(value_and_grad: Fn) -> Fn:
    """One gradient-descent step: f at x and x - step * grad f(x)."""

    def step(x, data, step_size):
        value, g = value_and_grad(x, data)
        return value, x - step_size * g

    return step


def no_compile(fn: Fn, args: tuple) -> tuple[Fn, None]:
    return fn, None


def convert_data(data: dict, asarray: Callable[[np.ndarray], Any]) -> dict:
    """Arrays converted once; python scalars (mu, c) pass through unchanged."""
    return {k: asarray(v) if isinstance(v, np.ndarray) else v for k, v in data.items()}


def has_module(name: str) -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return False, f"python package `{name}` is not installed"
    return True, ""
