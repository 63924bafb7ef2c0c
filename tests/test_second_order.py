"""Newton-CG and Newton (bench.measure.solvers): scipy's iterates, every backend to eps, a wrong HVP caught."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import converted
from scipy.optimize import minimize

import backends
import problems

import bench
from bench.measure.gd import descend
from bench.measure.solve import descent_iterations
from bench.measure.solvers import STEPS, newton_type, pieces
from bench.sweep.results import read_results

EPS = 1e-9


def _ours(backend, problem, inst, kind, mode="analytic", variant=None):
    """Our loop on a backend's pieces: its Run, and each accepted iterate with its step."""
    data, x0 = converted(backend, inst, inst.x0)
    (value_and_grad, *_) = backend.value_and_grad(problem, mode).values()
    variants = backend.functions(problem, mode)[kind]
    fns = {name: backend.fuse(piece)
           for name, piece in pieces(kind, value_and_grad, variants[variant or next(iter(variants))]).items()}
    steps = [backend.asarray(np.asarray(t), "cpu") for t in STEPS]
    iterates = []
    run = newton_type(kind, fns, x0, data, read=backend.to_numpy, steps=steps, f_star=inst.f_star, eps=EPS,
                      max_iter=200, on_iterate=lambda x, t: iterates.append((backend.to_numpy(x).copy(), t)))
    return run, iterates


def _scipy(problem, inst):
    """scipy's Newton-CG on the same problem and start: each iterate with the HVPs spent so far, and
    the step its line search took at each iteration."""
    hvps, iterates, steps = [0], [], []

    def hessp(x, v, data):
        hvps[0] += 1
        return problem.hvp(x, v, data)

    import scipy.optimize._optimize as optimize

    search = optimize._line_search_wolfe12

    def spy(*args, **kwargs):
        found = search(*args, **kwargs)
        steps.append(found[0])
        return found

    optimize._line_search_wolfe12 = spy
    try:
        minimize(problem.f, inst.x0, args=(inst.data,), jac=problem.grad, hessp=hessp, method="Newton-CG",
                 callback=lambda xk: iterates.append((xk.copy(), hvps[0])), options={"xtol": 1e-14, "maxiter": 200})
    finally:
        optimize._line_search_wolfe12 = search
    return iterates, steps


@pytest.mark.parametrize("name,n", [("logistic", 40), ("logistic", 300), ("least_squares_ill", 60)])
def test_newton_cg_takes_scipys_iterates_while_scipy_takes_the_unit_step(name, n):
    # The same algorithm (Nocedal and Wright 7.1 with scipy's forcing term, curvature tests and CG
    # limit); the documented difference is the line search: ours backtracks from t = 1 (Armijo),
    # scipy's looks for a strong Wolfe step and may take another. While scipy's steps are 1, every
    # iterate and HVP count must agree; after that, both must still reach eps.
    problem = problems.get(name)
    inst = problem.instance(n, seed=0)
    numpy = backends.get("numpy")
    run, ours = _ours(numpy, problem, inst, "hvp")
    theirs, steps = _scipy(problem, inst)
    unit = next((k for k, t in enumerate(steps) if t != 1.0), len(steps))
    assert unit >= 3  # the comparison covers iterations, not just a start
    hvps_ours = run.hvp_calls
    for k in range(min(unit, len(ours), len(theirs))):
        np.testing.assert_allclose(ours[k][0], theirs[k][0], rtol=1e-9, atol=1e-12)
        assert ours[k][1] == 1.0
    reached = next(k + 1 for k, (x, _) in enumerate(theirs) if problem.f(x, inst.data) - inst.f_star <= EPS)
    assert run.status == "ok" and run.f - inst.f_star <= EPS
    if unit >= len(steps):  # scipy stepped 1 all the way: the same iterations and HVPs to eps
        assert run.iterations == reached and hvps_ours == theirs[reached - 1][1]
    else:
        assert run.iterations <= reached + 2


@pytest.mark.parametrize("name", ["logistic", "least_squares_ill", "quadratic"])
@pytest.mark.parametrize("kind", ["hvp", "hess"])
def test_every_variant_of_every_backend_reaches_eps_in_the_same_iterations(backend, name, kind):
    problem = problems.get(name)
    inst = problem.instance(30, seed=0)
    taken = {}
    for mode in backend.modes:
        for variant in backend.functions(problem, mode).get(kind, {}):
            try:
                run, _ = _ours(backend, problem, inst, kind, mode, variant)
            except backends.Infeasible:  # torch.compile's double backward: the sweep's `skipped` row
                continue
            assert run.status == "ok" and run.f - inst.f_star <= EPS, (mode, variant, run)
            taken[mode, variant] = (run.iterations, run.hvp_calls, run.hess_calls)
    assert taken and len(set(taken.values())) == 1, taken


def test_newton_solves_a_quadratic_in_one_step():
    problem = problems.get("least_squares_ill")
    run, _ = _ours(backends.get("numpy"), problem, problem.instance(50), "hess")
    assert (run.iterations, run.hess_calls, run.grad_calls, run.status) == (1, 1, 2, "ok")


def test_the_line_search_gives_up_with_the_reason_instead_of_looping():
    # an "HVP" of the wrong sign: CG finds negative curvature at once and steps along scaled steepest
    # descent; a direction of ascent instead (a loop fed a wrong derivative) finds no decrease
    problem = problems.get("quadratic")
    inst = problem.instance(10)
    fns = pieces("hvp", problem.value_and_grad, problem.hvp)
    fns["trial"] = lambda x, p, t, data, trial=fns["trial"]: trial(x, -p, t, data)
    run = newton_type("hvp", fns, inst.x0, inst.data, read=np.asarray, steps=list(STEPS), f_star=inst.f_star,
                      eps=EPS, max_iter=50)
    assert run.status == "not_converged" and "line search" in run.why


def test_descent_on_the_ill_conditioned_problem_is_past_max_iter_as_predicted():
    problem = problems.get("least_squares_ill")
    inst = problem.instance(10)
    predicted = descent_iterations(problem, inst, EPS)
    assert predicted > 100_000
    step = lambda x: (problem.f(x, inst.data), x - problem.grad(x, inst.data) / inst.lipschitz)  # noqa: E731
    k, f, status = descend(step, inst.x0, to_float=float, f_star=0.0, eps=EPS, max_iter=10_000)
    assert status == "not_converged" and f > EPS  # a real run agrees: 10^4 steps do not reach eps


@pytest.fixture(scope="module")
def second_order_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("second") / "second.csv"
    bench.run(tasks=["solve"], solvers=["gd", "newton-cg", "newton"], problems=["logistic", "least_squares_ill"],
              backends=["numpy", "jax", "torch", "autograd"], n=[10, 60], progress=False, out=out, max_passes=2,
              repeats=2)
    return read_results([out])


def test_the_preset_plans_every_solver_on_every_backend_and_mode():
    from bench.sweep.executors import Settings
    from bench.sweep.presets import PRESETS, customise
    from bench.sweep.runner import plan

    cells = plan(PRESETS["second-order"], Settings(backends=("numpy", "jax", "torch", "autograd")))
    planned = {(c.problem, c.derivative, c.backend, c.modes) for c in cells}
    for backend, modes in (("numpy", ("analytic",)), ("jax", ("analytic", "autodiff")),
                           ("torch", ("analytic", "autodiff")), ("autograd", ("analytic", "autodiff"))):
        for solver in ("gd", "newton-cg", "newton"):
            assert ("logistic", solver, backend, modes) in planned
        assert ("kmeans", "newton", backend, modes) in planned
    # an override that makes the two jobs alike (--problems logistic) plans each cell once
    alike = plan(customise(PRESETS["second-order"], problems=["logistic"], sizes=[10]), Settings(backends=("numpy",)))
    assert sorted(c.derivative for c in alike) == ["gd", "newton", "newton-cg"]


@pytest.mark.slow  # the slow tier (make test-slow)
@pytest.mark.xdist_group(name="second_order_run")  # its module fixture (a real sweep) once, in one process
def test_every_solver_runs_everywhere_and_every_ok_row_reached_eps(second_order_run):
    df = second_order_run
    assert set(df["derivative"]) == {"gd", "newton-cg", "newton"}
    ok = df[df["status"] == "ok"]
    assert (ok["gap"] <= EPS).all() and ok["converged"].all()
    assert set(df["status"]) <= {"ok", "skipped"}, df[df["status"] != "ok"][["problem", "derivative", "message"]]
    skipped = df[df["status"] == "skipped"]
    assert (skipped["problem"] == "least_squares_ill").all() and (skipped["derivative"] == "gd").all()
    assert skipped["message"].str.contains("past max_iter").all()
    for backend in ("numpy", "jax", "torch", "autograd"):
        assert {"newton-cg", "newton"} <= set(ok[ok["backend"] == backend]["derivative"])
    # one loop for every variant: in each cell every backend, mode and variant takes the same steps and calls
    counts = ok.groupby(["problem", "n", "derivative"])[["iterations", "grad_calls", "hvp_calls",
                                                         "hess_calls"]].nunique()
    assert (counts == 1).all().all(), counts[(counts != 1).any(axis=1)]
    cg = ok[ok["derivative"] == "newton-cg"]
    assert (cg["hvp_calls"] > cg["iterations"]).any() and (cg["hess_calls"] == 0).all()
    newton = ok[ok["derivative"] == "newton"]
    assert (newton["hess_calls"] == newton["iterations"]).all() and (newton["hvp_calls"] == 0).all()


@pytest.mark.slow  # the slow tier (make test-slow)
@pytest.mark.xdist_group(name="second_order_run")
def test_the_report_answers_whether_the_hand_derived_derivatives_pay_off(second_order_run, tmp_path):
    from bench.analysis.summary import cell_stats
    from bench.render.report import build_report

    csv = tmp_path / "run.csv"
    second_order_run.to_csv(csv, index=False)
    html = build_report([csv], tmp_path / "report").read_text()
    assert 'id="second-order"' in html and "second_order_logistic_cpu.png" in html
    assert "Do the hand-derived HVP and Hessian pay off?" in html and "Newton-CG" in html
    assert "fastest to ε was" in html
    stats = cell_stats(second_order_run)
    assert {"hvp_calls", "hess_calls", "grad_calls"} <= set(stats.columns)


def test_newton_on_kmeans_is_lloyds_algorithm_and_reaches_its_certified_minimum():
    problem = problems.get("kmeans")
    inst = problem.instance(10)
    x, steps = inst.x0, 0
    while not np.array_equal(x - problem.newton(x, inst.data), x):
        x, steps = x - problem.newton(x, inst.data), steps + 1
    assert inst.f_star == pytest.approx(float(problem.f(x, inst.data)), abs=0)
    run, _ = _ours(backends.get("numpy"), problem, inst, "hess")
    assert run.status == "ok" and run.iterations == steps and run.hess_calls == steps


def test_a_wrong_hvp_is_rejected_before_its_solve_is_timed(registry, tmp_path):
    logistic = problems.get("logistic")
    wrong = replace(logistic, name="logistic_wrong_hvp", hvp=lambda x, v, data: 1.01 * logistic.hvp(x, v, data))
    problems.define(wrong)
    out = tmp_path / "wrong.csv"
    bench.run(problems=["logistic_wrong_hvp"], backends=["numpy", "autograd"], tasks=["solve"],
              solvers=["newton-cg"], n=[20], progress=False, out=out, max_passes=1, passes=1, repeats=1)
    df = read_results([out])
    # each mode is checked against the other: a disagreement flags both, and neither solve is timed
    assert set(df["mode"]) == {"analytic", "autodiff"} and (df["status"] == "wrong").all()
    assert df["message"].str.contains("hvp relative error").all() and df["time_s"].isna().all()
    assert (df["rel_err"] > 5e-3).all()


def test_unknown_solvers_are_refused_with_the_choices():
    with pytest.raises(bench.UsageError, match="newton-cg"):
        bench.run(solvers=["bfgs"], progress=False)
