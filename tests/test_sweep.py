"""A real (tiny) sweep through the CLI and worker processes: CSV schema, metadata, report."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.cli import main
from bench.results import COLUMNS, read_results

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    out = folder / "tiny.csv"
    code = main(["run", "--preset", "quick", "--problems", "least_squares,logistic", "--n", "8,24",
                 "--derivatives", "f,grad,hvp,hess", "--repeats", "3", "--samples", "3",
                 "--out", str(out), "--no-progress", "--report", str(folder / "report")])
    assert code == 0
    return out, folder / "report"


def test_csv_has_the_schema_and_dtypes(sweep):
    out, _ = sweep
    with open(out) as fh:
        assert fh.readline().strip().split(",") == list(COLUMNS)
    df = read_results([out])
    assert str(df["n"].dtype) == "int64" and str(df["time_s"].dtype) == "float64"
    assert str(df["converged"].dtype) == "boolean" and str(df["iterations"].dtype) == "Int64"
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["backend", "variant", "message"]]
    assert set(df["backend"]) == {"numpy", "jax", "torch", "autograd"}
    assert (df["dtype"] == "float64").all()
    assert (df["rel_err"] < 1e-8).all()


def test_eval_rows_are_samples_with_compile_time_apart(sweep):
    df = read_results([sweep[0]])
    ev = df[df["task"] == "eval"]
    per_cell = ev.groupby(["problem", "n", "backend", "mode", "derivative", "variant"]).size()
    assert (per_cell == 3).all()
    assert (ev["inner_loops"] >= 1).all() and (ev["time_s"] > 0).all()
    jax = ev[ev["backend"] == "jax"]
    assert (jax["compile_s"] > jax["time_s"]).all()  # AOT compile dwarfs a tiny call
    assert {"analytic", "autodiff"} == set(ev[ev["backend"] == "torch"]["mode"])


def test_solve_rows_converge_with_equal_iterations(sweep):
    df = read_results([sweep[0]])
    solve = df[df["task"] == "solve"]
    assert solve["converged"].all() and (solve["gap"] <= 1e-9).all()
    assert (solve.groupby(["problem", "n"])["iterations"].nunique() == 1).all()
    assert (solve.groupby(["problem", "n", "backend", "mode", "variant"]).size() == 3).all()


def test_metadata_records_the_environment(sweep):
    meta = json.loads(sweep[0].with_suffix(".meta.json").read_text())
    (run,) = meta.values()
    assert run["threads"] >= 1 and run["versions"]["numpy"]
    assert "OPENBLAS_CORETYPE" in run["openblas_env"] or "OPENBLAS_CORETYPE" not in __import__("os").environ
    assert set(run["backends"]) == {"numpy/cpu", "jax/cpu", "torch/cpu", "autograd/cpu"}
    assert run["backends"]["torch/cpu"]["torch_threads"] == run["threads"]
    assert run["interrupted"] is False and run["statuses"]["ok"] > 0


def test_report_builds_with_its_figures(sweep):
    _, report = sweep
    html = (report / "index.html").read_text()
    for name in ("headline_least_squares_cpu.png", "per_call_logistic_cpu.png",
                 "ratio_least_squares_cpu.png", "cheap_gradient.png"):
        assert (report / name).stat().st_size > 10_000
        assert f'src="{name}"' in html
    assert "http://" not in html and "https://" not in html  # opens offline
    assert "Headline" in html and "Environment" in html


def test_summary_tables_from_the_sweep(sweep):
    from bench.summary import autodiff_ratios, cell_stats

    df = read_results([sweep[0]])
    stats = cell_stats(df)
    ratios = autodiff_ratios(df)
    assert not ratios.empty and (ratios["ratio"] > 0).all() and (ratios["rounds"] == 3).all()
    # autograd's analytic side is numpy code timed in autograd's worker, in the same rounds
    assert set(ratios[ratios["backend"] == "autograd"]["variant_analytic"]) == {"eager"}
    jax = ratios[(ratios["backend"] == "jax") & (ratios["task"] == "solve")]
    assert (jax["variant"] == jax["variant_analytic"]).all()  # jit with jit, while-loop with while-loop
    assert isinstance(stats, pd.DataFrame) and (stats["samples"] >= 3).all()


def test_report_has_the_problem_catalogue(sweep):
    import problems

    _, report = sweep
    html = (report / "index.html").read_text()
    assert 'id="catalogue"' in html
    for name in problems.names():
        assert (report / f"formula_{name}.svg").stat().st_size > 500
        assert f"<code>{name}</code>" in html
