"""Every problem's analytic derivatives against central finite differences and self-consistency."""
from __future__ import annotations

import numpy as np
import pytest

import problems

from bench.measure.check import formula_findings


def test_names_sorted_and_complete():
    assert problems.names() == sorted(problems.names())
    assert {"least_squares", "quadratic", "logistic"} <= set(problems.names())
    for name in problems.built_in():
        p = problems.get(name)
        assert p.name == name and p.seed_ref and p.formula, name


def test_unknown_problem_names_the_valid_ones():
    with pytest.raises(ValueError, match="least_squares") as info:
        problems.get("least_squares2")
    assert "logistic" in str(info.value) and "quadratic" in str(info.value)


@pytest.mark.parametrize("n", [1, 5, 23])
@pytest.mark.parametrize("seed", [0, 3])
def test_every_formula_matches_finite_differences_and_its_identities(problem, n, seed):
    # nablabench check's own checks (bench.measure.check): each derivative kind against central differences
    # (Cauchy's formula for dk), Hessian symmetry, HVP = H v, value_and_grad, shapes and float64
    n = min([n, *problem.size_limits.values()])
    found = formula_findings(problem, n, seed)
    assert {f.derivative for f in found} == set(problem.derivatives), problem.name
    failing = [f for f in found if not f.ok]
    assert not failing, [(f.derivative, f.against, f.error, f.note) for f in failing]
    assert all(f.error == f.error for f in found if f.derivative != "dk")  # every check ran


JACOBIAN_PROBLEMS = [name for name in problems.names() if problems.get(name).jac is not None]


def test_the_library_has_every_derivative_kind():
    kinds = {d for name in problems.names() for d in problems.get(name).derivatives}
    assert kinds == set(problems.DERIVATIVE_KINDS)
    assert len(problems.names()) >= 30
    assert set(JACOBIAN_PROBLEMS) == {"matvec", "matvec_A"}


def test_tanh_derivatives_match_closed_forms_and_cauchys_formula():
    from problems.scalar import tanh_dk_cauchy, tanh_polynomial

    p = problems.get("tanh_dk")
    x, _ = p.evaluation_point(4, seed=2)
    y = np.tanh(x)
    closed = {1: 1 - y**2, 2: -2 * y * (1 - y**2), 3: -2 * (1 - y**2) * (1 - 3 * y**2),
              4: 8 * y * (1 - y**2) * (2 - 3 * y**2)}
    for k, expected in closed.items():
        np.testing.assert_allclose(p.dk(x, {"coef": tanh_polynomial(k)}), expected, rtol=1e-13, atol=1e-14)
    for k in range(1, p.size_limits["dk"] + 1):
        data = p.instance(k, seed=2).data
        assert p.order(data) == k
        exact = tanh_dk_cauchy(x, k)
        error = np.linalg.norm(p.dk(x, data) - exact) / np.linalg.norm(exact)
        assert error < 1e-10, (k, error)


def test_tanh_recurrence_loses_digits_past_its_size_limit():
    # The docstring's claim, which sets size_limits: float64 Horner on P_k cancels digits.
    from problems.scalar import tanh_dk_cauchy, tanh_polynomial

    p = problems.get("tanh_dk")
    x, _ = p.evaluation_point(32)
    exact = tanh_dk_cauchy(x, 32)
    error = np.linalg.norm(p.dk(x, {"coef": tanh_polynomial(32)}) - exact) / np.linalg.norm(exact)
    assert 1e-10 < error < 1e-6


@pytest.mark.parametrize("n", [2, 7, 60])
def test_det_shift_is_one_at_its_evaluation_point(n):
    p = problems.get("det_shift")
    t, _ = p.evaluation_point(n)
    a = p.instance(n).data["A"]
    assert not np.allclose(a, a.T)  # a general A, as in the exercise
    assert float(p.f(t, p.instance(n).data)) == pytest.approx(1.0, rel=1e-9)


def _arrays(inst):
    return {k: v for k, v in inst.data.items() if isinstance(v, np.ndarray)}


def test_instances_are_seeded_float64_and_sized(problem):
    a, b = problem.instance(12, seed=4), problem.instance(12, seed=4)
    c = problem.instance(12, seed=5)
    assert a.x0.dtype == np.float64 and a.x0.size == problem.dim(12)
    for name, array in _arrays(a).items():
        assert array.dtype == np.float64
        assert np.array_equal(array, b.data[name])
    # another seed: another point, and other random data (coefficient tables are fixed: taylor_cos,
    # tanh_dk; so are det_shift's evaluation point t0 and backprop's)
    assert not np.array_equal(problem.evaluation_point(12, 4)[0], problem.evaluation_point(12, 5)[0]) or \
        problem.name in ("backprop", "det_shift")
    assert any(not np.array_equal(v, c.data[k]) for k, v in _arrays(a).items()) or \
        problem.name in ("taylor_cos", "tanh_dk", "llsq") or not _arrays(a)
    assert problem.data_bytes(12) >= a.nbytes - a.x0.nbytes


@pytest.mark.parametrize("n", [2, 40])
def test_lipschitz_constant_is_the_largest_curvature(solvable, n):
    problem = solvable
    inst = problem.instance(n, seed=1)
    x, _ = problem.evaluation_point(n, 1)
    top = np.linalg.eigvalsh(problem.hess(x, inst.data))[-1]
    assert top <= inst.lipschitz * (1 + 1e-12)
    if problem.name in ("least_squares", "quadratic", "norm_outer"):  # quadratics: attained exactly
        assert top == pytest.approx(inst.lipschitz, rel=1e-10)


@pytest.mark.parametrize("n", [3, 30])
def test_f_star_is_the_minimum(solvable, n):
    problem = solvable
    inst = problem.instance(n, seed=2)
    if "convex" not in problem.tags:
        pytest.skip(f"{problem.name} is not convex: Newton's method from x0 may not reach its minimum")
    # Newton's method from x0 with the analytic Hessian reaches the minimiser of these convex problems.
    x = inst.x0.copy()
    for _ in range(30):
        x = x - np.linalg.solve(problem.hess(x, inst.data), problem.grad(x, inst.data))
    assert np.linalg.norm(problem.grad(x, inst.data)) < 1e-10
    assert float(problem.f(x, inst.data)) == pytest.approx(inst.f_star, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert float(problem.f(x + 0.1 * rng.standard_normal(n), inst.data)) > inst.f_star


def test_instance_generation_uses_no_cubic_factorisation(problem, monkeypatch):
    # A QR/SVD/eig of an n x n matrix costs ~40 s at n = 10^4; instances must be O(n^2).
    def refuse(*args, **kwargs):
        raise AssertionError("O(n^3) factorisation in instance generation")

    for name in ("qr", "svd", "eig", "eigh", "inv", "solve", "cholesky"):
        monkeypatch.setattr(np.linalg, name, refuse)
    inst = problem.instance(300, seed=0)
    assert inst.x0.size == problem.dim(300)


def test_formulas_get_the_libraries_own_functions_where_they_are_the_array_apis():
    """problems' array_namespace: numpy 2 itself, torch's own functions but for max and min, and
    compat's answer for every other library (found once per type: it runs inside timed formulas)."""
    import array_api_compat

    from problems._xp import array_namespace

    assert array_namespace(np.ones(3)) is np
    torch = pytest.importorskip("torch")
    xp = array_namespace(torch.ones(3))
    assert xp.sum is torch.sum and xp.exp is torch.exp and xp.max is torch.amax and xp.min is torch.amin
    assert xp.linalg is array_api_compat.array_namespace(torch.ones(3)).linalg
    x = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    assert xp.max(x, axis=1, keepdims=True).tolist() == [[2.0], [5.0]]  # values, not (values, indices)


def test_every_problem_of_the_default_and_field_presets_declares_its_cost_model():
    from bench.sweep.presets import PRESETS

    names = {p for preset in ("default", "field") for job in PRESETS[preset] for p in job.problems}
    for name in sorted(names):
        problem = problems.get(name)
        for kind in problem.derivatives:
            if kind in problem.stored:
                continue
            cost = problem.cost(kind, 64) if problem.cost else None
            assert cost is not None and cost.bytes > 0 and cost.flops > 0 and cost.written >= cost.bytes, (name, kind)
        if any(job.task == "solve" and name in job.problems for job in PRESETS["default"]):
            assert problem.cost("gd", 64) is not None, name


def test_check_measures_a_declared_cost_model_and_names_a_wrong_one():
    """least squares' gradient as written reads A twice: time x bandwidth agrees with that within the
    tolerance; a declaration of an eighth of it (bytes and flops) is named."""
    from dataclasses import replace

    from bench.measure.check import COST, check

    (right,) = [f for f in check(["least_squares"], sizes=(8,), seeds=(0,), backend_names=["numpy"], cost=True)
                if f.against == COST and f.derivative == "grad"]
    if right.n == 0 and "not memory-bound" in right.note:  # the hardware, not the code: no size is 4x its cache
        from bench.measure.roofline import measure

        pytest.skip(f"this CPU's last-level cache ({measure('cpu', 1)['llc_bytes'] / 2**20:.0f} MiB) leaves no "
                    f"checked size memory-bound: {right.note}")
    assert right.ok and right.n >= 1024 and "declared as written" in right.note, right
    true_cost = problems.least_squares.cost

    def too_small(kind, n):
        c = true_cost(kind, n)
        return c and problems.Cost(c.bytes / 8, c.flops / 8, c.written / 8)

    wrong = replace(problems.least_squares, name="least_squares_cost_wrong", cost=too_small)
    problems.register(wrong, "")
    try:
        (bad,) = [f for f in check([wrong.name], sizes=(8,), seeds=(0,), backend_names=["numpy"], cost=True)
                  if f.against == COST and f.derivative == "grad"]
    finally:
        problems._REGISTRY.pop(wrong.name), problems._SOURCES.pop(wrong.name)
    assert not bad.ok and bad.error > 3, bad
