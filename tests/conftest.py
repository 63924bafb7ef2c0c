"""Shared fixtures: the backends installed here (others skip with the reason), float64 forced;
and, for the pytest-benchmark suite, the machine facts that decide whether runs compare."""
from __future__ import annotations

import math

import cpus  # noqa: F401  (first: gives this xdist worker its own CPUs)
import pytest
from helpers import ready
from hypothesis import settings

import backends
import problems

from bench.measure.solve import descent_iterations


@pytest.fixture(params=backends.names())
def backend(request):
    return ready(request.param)


@pytest.fixture(scope="module")
def registry():
    """Problems a test module defines leave the registry as they found it (other tests list its names)."""
    saved = dict(problems._REGISTRY), dict(problems._SOURCES)
    yield
    problems._REGISTRY.clear(), problems._SOURCES.clear()
    problems._REGISTRY.update(saved[0]), problems._SOURCES.update(saved[1])


@pytest.fixture(params=problems.names())
def problem(request):
    return problems.get(request.param)


# Gradient descent runs where an instance gives a step and f*, and needs no more steps than a test
# affords (least_squares_ill needs ~10^5: tests/test_second_order.py): the solve tests apply to these.
SOLVABLE = [name for name in problems.names() if problems.get(name).instance(4).f_star is not None
            and math.isfinite(problems.get(name).instance(4).lipschitz)
            and descent_iterations(problems.get(name), problems.get(name).instance(4), 1e-9) < 5000]


@pytest.fixture(params=SOLVABLE)
def solvable(request):
    return problems.get(request.param)


# The slow tier (make test-slow) also takes the frameworks that compile every variant cold (XLA,
# torch.compile) on every problem; the fast tier (make test) takes them on this problem only.
COMPILED_BACKENDS = {"tensorflow", "torch-compile"}
FAST_PROBLEMS = {"least_squares"}

# Hypothesis: 200 examples a property in the fast tier; make test-slow runs them again with 1,000
# (--hypothesis-profile=thorough).
settings.register_profile("fast", max_examples=200, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile("fast")


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = {str(value) for value in getattr(getattr(item, "callspec", None), "params", {}).values()}
        if params & COMPILED_BACKENDS and not params & FAST_PROBLEMS:
            item.add_marker(pytest.mark.slow)


def pytest_benchmark_update_machine_info(config, machine_info):
    from threadpoolctl import threadpool_info

    from bench.core import environment

    machine_info["nablabench"] = environment.collect(environment.cpu_count())
    machine_info["threadpools"] = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for p in threadpool_info()
    ]
    try:
        import torch

        machine_info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            machine_info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
