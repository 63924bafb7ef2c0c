"""nablabench from Python: bench.run, check, compare and report, their results objects, and problems
made in __main__ (a `python -c` string, a script, a notebook cell) reaching the worker processes."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import session_problem

import problems

import bench

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.xdist_group(name=__name__)  # module fixtures: one process
TINY = dict(tasks=["eval"], n=[8, 16], derivatives=["grad", "hvp"], rounds=1, max_rounds=1, passes=2,
            max_passes=2, sample_time=0.001, threads=1, progress=False)


@pytest.fixture(scope="module")
def small_run(registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "small.csv"
    return bench.run(problems=["least_squares", session_problem()], backends=["numpy", "autograd"], out=out, **TINY)


def test_run_returns_the_rows_summary_and_metadata_of_its_csv(small_run):
    df = small_run.df
    assert set(df["status"]) == {"ok"}, df[df["status"] != "ok"][["problem", "variant", "message"]]
    assert set(df["problem"]) == {"least_squares", "session_quad"}  # the one made in a function, by value
    assert small_run.path.with_suffix(".summary.csv").exists()
    summary = small_run.summary
    autodiff = summary[summary["mode"] == "autodiff"]
    assert len(autodiff) and (autodiff["ratio_lo"] <= autodiff["ratio"]).all()
    assert (autodiff["ratio"] <= autodiff["ratio_hi"]).all()
    (meta,) = small_run.meta.values()
    assert meta["settings"]["backends"] == ["numpy", "autograd"] and not small_run.interrupted
    again = bench.Results.load(small_run.path)
    assert len(again.df) == len(df) and again.summary.shape == summary.shape


def test_results_show_their_findings_figures_and_table_in_a_notebook(small_run):
    html = small_run._repr_html_()
    assert small_run.findings and all(f"<li>{s}" in html for s in small_run.findings[:1])
    assert '<img src="data:image/png;base64,' in html and "autodiff / analytic" in html
    assert "session_quad" in html and "ok: " in html


def test_compare_of_a_run_with_itself_passes_and_calls_every_cell_the_same(small_run):
    comparison = bench.compare(small_run, small_run.path)
    assert comparison.passed and comparison.slower == 0 and not comparison.failures
    assert {v.status for v in comparison.ratios} == {"same"} and len(comparison.ratios) > 0
    assert set(comparison.frame("absolute")["status"]) == {"same"}
    assert "0 gating cell(s) slower" in str(comparison)


def test_report_writes_the_html_report(small_run, tmp_path):
    index = bench.report(small_run, out=tmp_path / "rep")
    assert index == tmp_path / "rep" / "index.html" and "session_quad" in index.read_text()


def test_bad_options_raise_a_usage_error_before_any_work(registry, tmp_path):
    out = tmp_path / "never.csv"
    cases = [(dict(backends=["jaxx"]),
              "expected one of: autograd, enzyme, jax, numpy, tensorflow, torch, torch-compile"),
             (dict(backends="numpy,jaxx"), "Unknown backend `jaxx`"),
             (dict(n=[10, 0]), "is not an integer >= 1"),
             (dict(problems=[42]), "a problems.Problem record; got int"),
             (dict(preset="huge"), "expected one of: "),
             (dict(passes=3, max_passes=2), "--max-passes (2) must be at least --passes (3)"),
             (dict(executor="slurm"), "expected one of: local, dask")]
    for options, message in cases:
        with pytest.raises(bench.UsageError, match=None) as info:
            bench.run(out=out, **options)
        assert message in str(info.value), (options, info.value)
        assert isinstance(info.value, ValueError)
    assert not out.exists()


def test_check_returns_its_table_and_a_verdict(registry):
    right = bench.check(session_problem("session_right"), n=[4], seeds=[0], backends=["autograd"])
    assert right.ok and bool(right) and right.failing == []
    assert right.table.loc[("session_right", "hvp"), "autograd"].endswith(" ok")
    wrong = bench.check(session_problem("session_wrong", hvp_scale=1.01), n=[4], seeds=[0], backends=["autograd"])
    assert not wrong.ok and wrong.failing == ["session_wrong hvp"]
    assert "FAIL" in wrong.table.loc[("session_wrong", "hvp"), "finite differences"]
    assert "FAILED" in wrong._repr_html_()


def test_check_says_why_a_framework_that_cannot_trace_f_has_no_verdict(registry):
    """f through plain numpy (as scipy's rosen is): JAX cannot trace it. Before, its column read `n/a ok`."""
    from problems import Instance, Problem

    def f(x, data):
        return 0.5 * float(np.sum(np.asarray(x) ** 2))

    untraceable = Problem(name="session_numpy_f", f=f, grad=lambda x, data: x,
                          instance=lambda n, seed=0: Instance("session_numpy_f", n, seed, x0=np.ones(n), data={}))
    result = bench.check(untraceable, n=[4], seeds=[0], backends=["jax"])
    assert result.table.loc[("session_numpy_f", "grad"), "jax"] == "not run"
    assert any("session_numpy_f grad vs jax" in r and "TracerArrayConversionError" in r for r in result.not_run)
    assert "not run (no verdict" in str(result) and "TracerArrayConversionError" in result._repr_html_()
    assert result.ok  # a framework that cannot differentiate f says nothing of the formula


def test_a_problem_redefined_in_a_session_replaces_its_earlier_definition(registry):
    first, second = session_problem("session_again"), session_problem("session_again", hvp_scale=2.0)
    problems.define(first)
    problems.define(second)  # a notebook cell run once more
    assert problems.get("session_again") is second and problems.origin("session_again") == "defined in this session"
    with pytest.raises(ValueError, match="already defined"):
        problems.define(session_problem("least_squares"))  # a built-in name is not taken


def test_the_figures_leave_a_notebooks_matplotlib_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); "
            "import bench.render.plots, bench.render.report, bench.render.catalogue, bench.analysis.history; "
            "print(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "svg"


@pytest.mark.slow
def test_the_issues_python_call_and_a_problem_defined_in_the_same_string(tmp_path):
    """The command of issue 25 (its two statements on two lines), in a fresh process; then the same call
    with a problem made in that `-c` string (functions of __main__, which no worker can import)."""
    code = textwrap.dedent("""
        import bench
        r = bench.run(problems=['least_squares'], backends=['numpy', 'jax'], derivatives=['grad'], n=[10, 100])
        print(r.df.status.value_counts())
        print("STATUSES", sorted(set(r.df.status)))
        import numpy as np
        from array_api_compat import array_namespace
        from problems import Instance, Problem
        def f(x, data):
            return 0.5 * array_namespace(x).sum(data["d"] * x * x)
        def grad(x, data):
            return data["d"] * x
        def instance(n, seed=0):
            return Instance("mine", n, seed, x0=np.ones(n), data={"d": np.linspace(1, 2, n)}, lipschitz=2.0,
                            solve_f_star=0.0)
        mine = Problem(name="mine", f=f, grad=grad, instance=instance)
        r = bench.run(problems=[mine], backends=['numpy', 'jax'], derivatives=['grad'], n=[10, 100])
        print(r.df.status.value_counts())
        print("STATUSES", sorted(set(r.df.status)), sorted(set(r.df.problem)), sorted(set(r.df.backend)))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("STATUSES")]
    assert lines == ["STATUSES ['ok']", "STATUSES ['ok'] ['mine'] ['jax', 'numpy']"], done.stdout
    written = [p for p in (tmp_path / "results").glob("run-*.csv") if not p.name.endswith(".summary.csv")]
    assert len(written) == 2  # a new file per call


@pytest.mark.slow
def test_a_script_that_runs_a_sweep_unguarded_is_not_run_again_by_the_workers(tmp_path):
    """multiprocessing's spawn would import the parent's script in each worker: with no
    `if __name__ == "__main__"` guard that starts a sweep in every worker."""
    script = tmp_path / "my_script.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.path.insert(0, {tests!r})
        with open("started.txt", "a") as fh:
            fh.write("started\\n")
        import bench
        from helpers import session_problem
        r = bench.run(problems=[session_problem("scripted")], backends=["numpy", "autograd"], tasks=["eval"],
                      n=[8], derivatives=["grad"], rounds=1, max_rounds=1, max_passes=2, progress=False)
        print("STATUSES", sorted(set(r.df.status)), sorted(set(r.df.problem)))
    """).format(tests=str(ROOT / "tests")))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATUSES ['ok'] ['scripted']" in done.stdout
    assert (tmp_path / "started.txt").read_text() == "started\n"
