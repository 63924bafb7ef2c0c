"""The dtype axis: float32 beside float64, each result in its dtype, its accuracy against a higher precision,
the gate and the solve's target from the dtype, floors per dtype, and the report's section."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import problems

import bench
from bench.analysis import precision as analysis
from bench.analysis.floors import in_dtype, with_floors
from bench.analysis.summary import cell_stats
from bench.core import defaults, precision
from bench.measure.accuracy import error
from bench.options import run_record, validate_run
from bench.sweep.executors import Settings
from bench.sweep.presets import PRESETS, Job
from bench.sweep.results import read_results
from bench.sweep.runner import plan


def test_float64_keeps_the_seeds_target_and_float32_gets_one_above_its_rounding():
    assert precision.solve_eps(defaults.EPS, "float64") == defaults.EPS
    eps32 = precision.solve_eps(defaults.EPS, "float32")
    assert 2e-5 < eps32 < 2.5e-5  # sqrt(eps32 / eps64) = 2.3e4 times 1e-9
    assert eps32 > 100 * np.finfo(np.float32).eps  # far above the rounding of an f of order 1


def test_the_gate_scales_with_the_dtype_the_condition_and_the_size_and_never_drops_below_rtol():
    assert precision.gate_rtol(1e-8, "float64", 1.0, 100) == 1e-8  # 16 * 2.2e-16 * 10 = 3.6e-14 < 1e-8
    gate32 = precision.gate_rtol(1e-8, "float32", 1.0, 100)
    assert gate32 == pytest.approx(16 * np.finfo(np.float32).eps * 10)
    assert precision.gate_rtol(1e-8, "float32", 100.0, 100) == pytest.approx(100 * gate32)
    assert precision.gate_rtol(1e-8, "float32", 0.01, 100) == gate32  # a condition below 1 counts as 1
    assert precision.gate_rtol(1e-8, "float32", math.nan, 100) == 1e-8  # no condition: the run's rtol


def test_the_error_against_long_double_keeps_digits_float64_would_round_away():
    reference = np.array([1.0], dtype=np.longdouble) + np.longdouble(2) ** -60
    assert error(np.array([1.0]), reference) == pytest.approx(2.0**-60, rel=1e-3)
    assert error(np.array([1.0, 2.0]), reference) == math.inf


def test_an_unknown_dtype_is_refused_naming_the_valid_ones_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "run", "--dtypes", "float16", "--out",
                           str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Unknown dtype `float16`; expected one of: float64, float32" in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_cells_are_planned_per_dtype_with_its_target_and_accuracy_only_beside_float64():
    jobs = (Job("eval", ("least_squares",), ("grad",), (10,)), Job("solve", ("least_squares",), ("gd",), (10,)))
    alone = plan(jobs, Settings(backends=("numpy",)))
    assert [(c.dtype, c.accuracy) for c in alone] == [("float64", False)] * 2
    both = plan(jobs, Settings(backends=("numpy",), dtypes=("float64", "float32")))
    assert {(c.task, c.dtype) for c in both} == {(t, d) for t in ("eval", "solve") for d in ("float64", "float32")}
    assert all(c.accuracy for c in both)
    assert {c.dtype: c.eps for c in both if c.task == "solve"} == {
        d: precision.solve_eps(defaults.EPS, d) for d in ("float64", "float32")}
    assert len({c.key for c in both}) == 4  # the dtype is in the cell's key


def test_the_precision_preset_runs_both_and_a_float64_run_records_what_it_recorded_before(tmp_path):
    options = {name: p.default for name, p in __import__("inspect").signature(bench.run).parameters.items()}
    plain = validate_run(**{**options, "backends": "numpy", "out": str(tmp_path / "a.csv")})
    assert plain.settings.dtypes == ("float64",) and "dtypes" not in run_record(plain)["settings"]
    both = validate_run(**{**options, "preset": "precision", "backends": "numpy", "out": str(tmp_path / "b.csv")})
    assert both.settings.dtypes == ("float64", "float32")
    assert run_record(both)["settings"]["dtypes"] == ["float64", "float32"]
    assert "precision" in PRESETS


def test_floors_count_the_dtypes_bytes():
    cost = problems.get("least_squares").cost("grad", 1000)
    half = in_dtype(cost, "float32")
    assert half.bytes == cost.bytes / 2 and half.written == cost.written / 2 and half.flops == cost.flops
    assert in_dtype(cost, "float64") is cost


@pytest.fixture(scope="module")
def both_dtypes(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision") / "run.csv"
    bench.run(problems=["least_squares", "logistic"], backends=["numpy", "autograd"], dtypes=["float64", "float32"],
              tasks=["eval", "solve"], derivatives=["f", "grad", "hvp"], solvers=["gd"], n=[10, 50], passes=2,
              max_passes=2, rounds=2, sample_time=0.001, out=out, progress=False)
    return out, read_results([out])


def test_a_run_of_both_dtypes_checks_and_times_each_with_its_accuracy(both_dtypes):
    _, rows = both_dtypes
    assert set(rows["status"]) == {"ok"}
    assert set(rows["dtype"]) == {"float64", "float32"}
    ev = rows[rows["task"] == "eval"]
    assert ev["precise_err"].notna().all() and ev["condition"].notna().all()
    err = ev.groupby("dtype")["precise_err"].max()
    assert err["float32"] < 1e-5 and err["float64"] < 1e-13  # float32's rounding against float64's
    assert ev.loc[ev["dtype"] == "float32", "precise_err"].median() > 1e3 * err["float64"]
    assert (ev["rel_err"] <= ev["rtol"]).all()
    assert (ev.loc[ev["dtype"] == "float64", "rtol"] == defaults.RTOL).all()
    solves = rows[rows["task"] == "solve"]
    for dtype, part in solves.groupby("dtype"):
        assert (part["gap"] <= precision.solve_eps(defaults.EPS, dtype)).all()
        assert (part["eps"] == precision.solve_eps(defaults.EPS, dtype)).all()
    iterations = solves.groupby("dtype")["iterations"].median()
    assert iterations["float32"] < iterations["float64"]  # a looser target takes fewer steps


def test_the_report_puts_both_precisions_side_by_side(both_dtypes, tmp_path):
    out, rows = both_dtypes
    index = bench.report([out], out=tmp_path / "report")
    html = index.read_text()
    assert 'id="precision"' in html and "float32 / float64" in html
    ratios = analysis.dtype_ratios(rows)
    assert set(ratios["backend"]) == {"numpy", "autograd"} and (ratios["dtype_ratio"] > 0).all()
    sentences = [s.text for s in analysis.findings(rows, cell_stats(rows), with_floors(cell_stats(rows), {}))]
    assert any(s.startswith("least_squares's hand-derived gradient at n = 50: float32 took") for s in sentences)
    assert any(s.startswith("Gradient descent on logistic at n = 50: float32 reached") for s in sentences)


def test_a_formula_that_promotes_to_float64_is_wrong_not_timed(tmp_path, registry):
    problem = problems.get("least_squares")
    promoted = problems.Problem(**{**{f: getattr(problem, f) for f in problem.__dataclass_fields__},
                                   "name": "least_squares_promoted", "fused": {},
                                   "grad": lambda x, data: problem.grad(x, data).astype(np.float64)})
    problems.define(promoted)
    out = tmp_path / "promoted.csv"
    bench.run(problems=["least_squares_promoted"], backends=["numpy"], dtypes=["float32"], tasks=["eval"],
              derivatives=["grad"], n=[10], passes=1, max_passes=1, rounds=2, sample_time=0.001, out=out,
              progress=False)
    rows = read_results([out])
    assert set(rows["status"]) == {"wrong"}
    assert rows["message"].str.contains("a float64 result where float32 was asked").all()
