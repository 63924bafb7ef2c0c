"""Named sweeps. A job is one task over problems x derivatives x sizes; a preset is a few jobs."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

import problems

from bench.core import defaults


def logspace_sizes(start: float, stop: float, num: int) -> tuple[int, ...]:
    """np.logspace(start, stop, num) rounded to unique integers (the seed's sweep: 1, 4, 50)."""
    return tuple(int(n) for n in np.unique(np.rint(np.logspace(start, stop, num)).astype(int)))


@dataclass(frozen=True)
class Job:
    task: str  # eval | solve
    problems: tuple[str, ...]
    derivatives: tuple[str, ...]  # eval: the kinds (each problem runs the ones it defines); solve: the solvers
    sizes: tuple[int, ...]
    repeats: int = defaults.REPEATS  # solve: runs of each variant over the first `passes` passes, at least
    rounds: int = defaults.ROUNDS  # eval: interleaved rounds a cell takes in each pass, at least
    passes: int = defaults.PASSES  # passes a cell's rounds (runs) are spread over, at least ...
    max_passes: int = defaults.MAX_PASSES  # ... and at most, as many as its first pass plans (bench.core.stopping)


EVAL_SIZES = (10, 32, 100, 316, 1000, 3162, 10000)
THREE = ("least_squares", "quadratic", "logistic")
NO_HESSIAN = tuple(k for k in problems.DERIVATIVE_KINDS if k != "hess")  # the dense Hessian has sizes of its own

PRESETS: dict[str, tuple[Job, ...]] = {
    # The seed's headline experiment at full spec, then per-call timings on a subset of sizes.
    "default": (
        Job("solve", ("least_squares",), ("gd",), logspace_sizes(1, 4, 50)),
        Job("eval", THREE, NO_HESSIAN, EVAL_SIZES),
        Job("eval", THREE, ("hess",), (10, 32, 100, 316, 1000)),
    ),
    # Beyond n = 10^4 where the memory allows (a GPU box): A alone is 8 GB at n = 31623.
    "large": (
        Job("solve", ("least_squares",), ("gd",), logspace_sizes(3, 4.5, 7)),
        Job("eval", THREE, NO_HESSIAN, logspace_sizes(3, 4.5, 7)),
        Job("eval", THREE, ("hess",), (1000, 3162, 10000)),
    ),
    # A smoke run for CI and quick checks: every code path, small sizes.
    "quick": (
        Job("solve", ("least_squares",), ("gd",), (10, 100, 1000)),
        Job("eval", THREE, NO_HESSIAN, (10, 100, 1000)),
        Job("eval", THREE, ("hess",), (10, 100)),
    ),
    # CI regression tracking: a few cells in more passes than a sweep gives them, so that their
    # intervals are tight enough for the gate's factor (bench.ci, against baselines/ci-<machine>.csv).
    "ci": (
        Job("eval", ("least_squares", "logistic"), ("grad", "hvp"), (100, 1000), rounds=3, passes=4, max_passes=8),
    ),
    # The field's standard workloads over their peers' size ranges, trimmed to a few minutes here:
    # GradBench's llsq (points at m = 128), lse (length), gmm (K at D = 10, N = 1000) and
    # kmeans (k at d = 8, N = 10^4; its Newton direction is GradBench's `dir`).
    "field": (
        Job("eval", ("llsq",), NO_HESSIAN + ("hess",), (16, 128, 1024, 8192)),
        Job("eval", ("lse",), NO_HESSIAN, (2500, 20000, 160000)),
        Job("eval", ("lse",), ("hess",), (2500,)),
        Job("eval", ("gmm",), NO_HESSIAN + ("hess",), (5, 10, 25)),
        Job("eval", ("kmeans",), NO_HESSIAN + ("hess",), (10, 100, 1000)),
    ),
    # Every problem of the library, every derivative it defines, at two small sizes (each problem's
    # size_limits still apply): the check that the whole library runs on every backend.
    "library": (
        Job("eval", tuple(problems.built_in()), NO_HESSIAN + ("hess",), (4, 16), max_passes=2),
    ),
    # Does a hand-derived Hessian pay off? Time to eps by gradient descent, Newton-CG (one HVP per CG
    # step) and Newton (a dense Hessian per step), analytic against every autodiff variant, on the
    # seed's regularised logistic regression and on least squares at cond = 10^4 (bench.measure.solvers).
    # And on GradBench's k-means, whose `dir` is the Newton direction: Newton there is Lloyd's algorithm
    # (f* is the local minimum it reaches); Newton-CG's inexact steps stall at other local minima, and
    # torch.func.hessian takes a minute a run (one run; the cheap variants take more passes).
    "second-order": (
        Job("solve", ("logistic", "least_squares_ill"), ("gd", "newton-cg", "newton"), (10, 100, 1000)),
        Job("solve", ("kmeans",), ("newton",), (10,), repeats=1, passes=1),
    ),
    # The frameworks beyond the default four: TensorFlow (eager and XLA) and compiled PyTorch, beside
    # the others, on the seed's descent and the three problems' per-call derivatives (the backends
    # whose record names this preset run only in it, or when named by --backends).
    "frameworks": (
        Job("solve", ("least_squares",), ("gd",), (10, 100, 1000, 10000)),
        Job("eval", THREE, NO_HESSIAN, (10, 100, 1000, 10000)),
        Job("eval", THREE, ("hess",), (10, 100, 1000)),
    ),
    # Enzyme (automatic differentiation after optimisation, through Enzyme-JAX) against JAX's own autodiff
    # of the same f, both jitted, in the same worker and rounds: run with `--backends enzyme` (its
    # analytic side is JAX's jitted formula) or beside the others.
    "enzyme": (
        Job("eval", THREE, ("grad", "hvp"), (10, 100, 1000, 10000)),
        Job("eval", THREE, ("hess",), (10, 100, 1000)),
    ),
    # Sparse Hessians three ways: the hand-derived nonzeros, sparse autodiff (asdex: detection and colouring
    # timed as its compile, then a few compressed HVPs) and the dense autodiff Hessians where memory allows,
    # on a chained, a 2-D stencil (n is the grid's side: n^2 variables) and a separable problem; and to eps
    # by Newton with the sparse Hessian, Newton-CG and gradient descent where it runs.
    "sparse": (
        Job("eval", ("rosenbrock_chain", "logcosh_sep"), ("sparse_hess", "hvp"),
            (10, 100, 1000, 10000, 100000, 1000000)),
        Job("eval", ("rosenbrock_chain", "logcosh_sep"), ("hess",), (10, 100, 1000, 3162, 10000)),
        Job("eval", ("stencil_energy",), ("sparse_hess", "hvp"), (3, 10, 32, 100, 317, 1000)),
        Job("eval", ("stencil_energy",), ("hess",), (3, 10, 32, 56, 100)),
        Job("solve", ("logcosh_sep",), ("newton-sparse", "newton-cg", "gd"), (1000, 100000), repeats=2, passes=1,
            max_passes=2),
        Job("solve", ("stencil_energy",), ("newton-sparse", "newton-cg"), (32, 317), repeats=2, passes=1, max_passes=2),
    ),
    # float32 beside float64 (its dtypes: PRESET_DTYPES): the default problems' per-call derivatives and the
    # field's workloads, each result's accuracy against a higher precision, and gradient descent and
    # Newton-CG to each dtype's target (bench.core.precision.solve_eps).
    "precision": (
        Job("eval", THREE, NO_HESSIAN, (10, 100, 1000, 10000)),
        # (the long double reference of a dense Hessian at n = 1000 takes 3.4 s, twice, in every backend's cell)
        Job("eval", THREE, ("hess",), (10, 100, 316)),
        Job("eval", ("lse",), NO_HESSIAN, (2500, 20000)),
        Job("eval", ("llsq",), NO_HESSIAN, (16, 128, 1024)),
        Job("eval", ("gmm",), NO_HESSIAN, (5, 10)),
        Job("eval", ("kmeans",), NO_HESSIAN, (10, 100, 1000)),
        Job("solve", THREE, ("gd", "newton-cg"), (10, 100, 1000), repeats=2, passes=1, max_passes=3),
    ),
    # The k-th derivative of tanh with the order k as the sweep variable: analytic recurrence,
    # nested autodiff (each backend declines orders it cannot afford) and Taylor mode (jet).
    "orders": (
        Job("eval", ("tanh_dk",), ("dk",), (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24)),
    ),
}


# The dtypes a preset runs in where --dtypes does not say (float64 alone for the others: precision.DEFAULT).
PRESET_DTYPES: dict[str, tuple[str, ...]] = {"precision": ("float64", "float32")}


def customise(jobs: tuple[Job, ...], *, tasks=None, problems=None, derivatives=None, solvers=None, sizes=None,
              repeats=None, rounds=None, passes=None, max_passes=None) -> tuple[Job, ...]:
    """Apply command-line overrides to every job of a preset (None keeps the preset's value)."""
    out = []
    for job in jobs:
        if tasks is not None and job.task not in tasks:
            continue
        if problems is not None:
            job = replace(job, problems=tuple(problems))
        if derivatives is not None and job.task == "eval":
            kept = tuple(d for d in job.derivatives if d in derivatives)
            if not kept:
                continue
            job = replace(job, derivatives=kept)
        if solvers is not None and job.task == "solve":
            job = replace(job, derivatives=tuple(solvers))
        if sizes is not None:
            job = replace(job, sizes=tuple(sizes))
        if repeats is not None:
            job = replace(job, repeats=repeats)
        if rounds is not None:
            job = replace(job, rounds=rounds)
        if passes is not None:
            job = replace(job, passes=passes, max_passes=max(passes, job.max_passes))
        if max_passes is not None:
            job = replace(job, max_passes=max_passes, passes=min(job.passes, max_passes))
        out.append(job)
    return tuple(out)
