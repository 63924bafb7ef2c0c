"""The field's standard workloads against values computed from the peers' own definitions.

The numbers below were computed by running the peers' reference code on the inputs shown:
- llsq: GradBench cpp/gradbench/evals/llsq.hpp (primal), tools/manual/llsq.cpp (gradient); cmpad
  python/cmpad/llsq_obj.py gives the same y.
- lse: GradBench python/gradbench/gradbench/tools/jax/lse.py.
- gmm: GradBench python/gradbench/gradbench/tools/pytorch/gmm_objective.py and the naive
  log_posterior of evals/gmm/run.py (both -14.39714176399504); ADBench's
  src/python/modules/PyTorch/gmm_objective.py gives 1.2773003930675362 (its Wishart sign error).
- kmeans: GradBench python/gradbench/gradbench/tools/jax/kmeans.py (cost and dir).
Every workload's formulas also pass the library's finite-difference and autodiff checks
(tests/test_problems.py and tests/test_backends.py run over every registered problem).
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import problems

# the modules, by name: problems.gmm (an attribute) is the Problem record the package re-exports
gmm_module = importlib.import_module("problems.gmm")
kmeans_module = importlib.import_module("problems.kmeans")
llsq_module = importlib.import_module("problems.llsq")


def test_llsq_points_signs_and_values_match_gradbench():
    p = problems.get("llsq")
    data = p.instance(3).data
    np.testing.assert_array_equal(data["t"], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(data["s"], [-1.0, 0.0, 1.0])  # sign(0) = 0, as both peers say
    # GradBench's m = 4 case: our m = 128 with the extra coefficients zero is the same function
    x = np.zeros(llsq_module.M)
    x[:4] = [0.5, 0.25, 0.125, 0.0625]
    assert float(p.f(x, data)) == 0.98828125
    np.testing.assert_allclose(p.grad(x, data)[:4], [1.75, -1.375, 1.25, -1.375], rtol=1e-15)
    assert llsq_module.points(16392)[0] == -1.0 and llsq_module.points(16392)[-1] == 1.0


def test_lse_matches_gradbench_jax():
    p = problems.get("lse")
    x = np.array([0.1, 0.5, 0.9])
    assert float(p.f(x, {})) == pytest.approx(1.651250513728494, rel=1e-15)
    np.testing.assert_allclose(p.grad(x, {}), [0.21198272070752777, 0.31624105822468146, 0.4717762210677908],
                               rtol=1e-15)
    x, _ = p.evaluation_point(2500)
    assert x.min() >= 0.0 and x.max() < 1.0  # GradBench's U[0, 1)


GMM_TINY = dict(alpha=[0.3, -0.2], mu=[[0.1, 0.4], [0.6, -0.3]], q=[[0.2, -0.1], [0.05, 0.3]], l=[[0.5], [-0.25]],
                x=[[0.0, 0.5], [1.0, -0.5], [-0.7, 0.2]])


def test_gmm_is_gradbenchs_negative_log_posterior_on_a_tiny_input():
    p = problems.get("gmm")
    a = {k: np.array(v) for k, v in GMM_TINY.items()}
    theta = gmm_module.flatten(a["alpha"], a["mu"], a["q"], a["l"])
    data = {"points": a["x"], "m": 0.0, "gamma": 1.0, "offset": gmm_module.offset(2, 2, 3)}
    assert float(p.f(theta, data)) == pytest.approx(14.39714176399504, rel=1e-14)  # -F, F = GradBench's
    gradbench_gradient_of_F = [0.07345438146, -0.07345438146, -0.690598009469, -0.503259422946, -0.364115234106,
                               0.455848460188, -0.792428332583, 0.912748895131, -0.697614077789, -0.726924126209,
                               -1.304139747664, 0.84496675897]
    np.testing.assert_allclose(-p.grad(theta, data), gradbench_gradient_of_F, rtol=1e-10, atol=1e-11)


def test_gmm_generator_draws_gradbenchs_distributions_in_its_order():
    # evals/gmm/run.py generate(): x ~ N(0,1), alpha ~ N(0,1), mu ~ U[0,1), q ~ N(0,1), l ~ N(0,1)
    drawn = gmm_module.draw(np.random.default_rng(31337), 10, 5, 1000)
    again = np.random.default_rng(31337)
    for name, shape in (("x", (1000, 10)), ("alpha", (5,)), ("mu", (5, 10)), ("q", (5, 10)), ("l", (5, 45))):
        expected = again.uniform(size=shape) if name == "mu" else again.normal(size=shape)
        np.testing.assert_array_equal(drawn[name], expected)
    assert gmm_module.dim(5) == 5 * (1 + 10 + 55)


def test_kmeans_cost_and_newton_direction_match_gradbench_jax():
    points = np.array([[0.0, 0.0], [1.0, 0.1], [0.1, 1.0], [0.9, 0.8], [0.2, 0.1]])
    data = {"points": points, "points_t": np.ascontiguousarray(points.T)}
    centroids = points[-2:].ravel()  # GradBench: the last k points
    p = problems.get("kmeans")
    assert float(p.f(centroids, data)) == pytest.approx(1.23, rel=1e-14)
    np.testing.assert_allclose(p.newton(centroids, data), [0.7 / 3, 0.5 / 3, 0.1, 0.05], rtol=1e-14)
    # the Newton direction is grad / diag(hess): Lloyd's step, c - dir = the mean of each cluster
    np.testing.assert_allclose(p.newton(centroids, data), p.grad(centroids, data) / np.diag(p.hess(centroids, data)))
    inst = p.instance(10)
    np.testing.assert_array_equal(inst.x0, inst.data["points"][-10:].ravel())
    assert kmeans_module.POINTS == 10_000 and kmeans_module.DIM == 8


def test_field_preset_sweeps_the_four_workloads():
    from bench.sweep.presets import PRESETS

    swept = {p for job in PRESETS["field"] for p in job.problems}
    assert swept == {"llsq", "lse", "gmm", "kmeans"}
    assert all("gradbench" in problems.get(p).tags for p in swept)
    assert "newton" in problems.get("kmeans").derivatives
