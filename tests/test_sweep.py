"""A real (tiny) sweep through the CLI and worker processes: CSV schema, metadata, report."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import backends

from bench.cli import main
from bench.sweep.results import COLUMNS, read_results

pytestmark = pytest.mark.xdist_group(name=__name__)  # module fixtures: one process
# the backends a run selects without --backends: installed, and not kept for a preset of their own
INSTALLED = [name for name in backends.names()
             if backends.get(name).available()[0] and backends.get(name).presets is None]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    # No dense Hessian here: a sweep over it runs in test_faults and test_extend, and every backend's
    # Hessian variants are checked in test_backends.
    folder = tmp_path_factory.mktemp("sweep")
    out = folder / "tiny.csv"
    code = main(["run", "--preset", "quick", "--problems", "least_squares,logistic", "--n", "8,24",
                 "--derivatives", "f,grad,hvp", "--repeats", "3", "--rounds", "1", "--max-rounds", "2",
                 "--passes", "2", "--max-passes", "2", "--sample-time", "0.001",
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
    assert set(df["backend"]) == set(INSTALLED)
    assert (df["dtype"] == "float64").all()
    assert (df["rel_err"] < 1e-8).all()


def test_eval_rows_are_samples_with_compile_time_apart(sweep):
    df = read_results([sweep[0]])
    ev = df[df["task"] == "eval"]
    per_cell = ev.groupby(["problem", "n", "backend", "mode", "derivative", "variant"]).size()
    assert (per_cell == 2).all()
    # two passes, one round each (--rounds 1: one round gives no within-pass spread to take more for)
    parts = ev.groupby(["problem", "n", "backend", "mode", "derivative", "variant"])["part"]
    assert (parts.nunique() == 2).all() and set(ev["part"]) == {0, 1}
    assert ((ev["part"] == 0).sum(), (ev["part"] == 1).sum()) == (len(per_cell), len(per_cell))
    assert (ev["inner_loops"] >= 1).all() and (ev["time_s"] > 0).all()
    jax = ev[ev["backend"] == "jax"]
    assert (jax["compile_s"] > jax["time_s"]).all()  # AOT compile dwarfs a tiny call
    # compiled once per cell, cold, in its first pass; the second pass re-warms and reports that compile
    per_part = jax.groupby(["problem", "n", "mode", "derivative", "variant"])["compile_s"].nunique()
    assert (per_part == 1).all()
    for name in INSTALLED:  # both modes in every backend (numpy: the formulas only)
        assert set(ev[ev["backend"] == name]["mode"]) == set(backends.get(name).modes), name


def test_solve_rows_converge_with_equal_iterations(sweep):
    df = read_results([sweep[0]])
    solve = df[df["task"] == "solve"]
    assert solve["converged"].all() and (solve["gap"] <= 1e-9).all()
    assert (solve.groupby(["problem", "n"])["iterations"].nunique() == 1).all()
    runs = solve.groupby(["problem", "n", "backend", "mode", "variant"])
    # the seed's 3 runs at least (2 in the first pass, 1 in the second), a 4th where a run is cheap
    assert runs.size().between(3, 4).all() and (runs["part"].nunique() == 2).all()
    assert not solve.duplicated(["problem", "n", "backend", "mode", "variant", "repeat"]).any()


def test_metadata_records_the_environment(sweep):
    meta = json.loads(sweep[0].with_suffix(".meta.json").read_text())
    (run,) = meta.values()
    assert run["threads"] >= 1 and run["versions"]["numpy"]
    assert "OPENBLAS_CORETYPE" in run["openblas_env"] or "OPENBLAS_CORETYPE" not in __import__("os").environ
    assert set(run["backends"]) == {f"{name}/cpu" for name in INSTALLED}
    if "torch" in INSTALLED:
        assert run["backends"]["torch/cpu"]["torch_threads"] == run["threads"]
    assert run["interrupted"] is False and run["statuses"]["ok"] > 0


def test_metadata_records_the_time_left_shown_and_each_parts_seconds(sweep):
    from bench.core.schema import KEY
    from bench.sweep.eta import key_text

    (run,) = json.loads(sweep[0].with_suffix(".meta.json").read_text()).values()
    trace = run["eta_trace"]
    assert all(low <= likely <= high for _, low, likely, high in trace) and trace[-1][1:] == [0, 0, 0]
    assert [spent for spent, *_ in trace] == sorted(spent for spent, *_ in trace)
    df = read_results([sweep[0]])
    ran = {(key_text(tuple(r[k] for k in KEY)), int(r["part"])) for r in df.to_dict("records")}
    logged = {(key, part) for key, part, seconds, _ in run["parts_log"] if seconds is not None}
    assert ran <= logged  # every part that wrote rows, with the seconds it took (a later run's history)


def test_report_builds_with_its_figures(sweep):
    _, report = sweep
    html = (report / "index.html").read_text()
    for name in ("headline_least_squares_cpu.png", "per_call_logistic_cpu.png",
                 "ratio_least_squares_cpu.png", "cheap_gradient_cpu.png"):
        assert (report / name).stat().st_size > 10_000
        assert f'src="{name}"' in html
    assert "http://" not in html and "https://" not in html  # opens offline
    assert "Headline" in html and "Environment" in html
    assert "bound method" not in html and "dtype:" not in html  # no object's repr leaks into a table
    # the correctness line per backend names the worst cell: problem, size, mode, derivative, variant
    assert re.search(r"(least_squares|logistic) n=(8|24) (analytic|autodiff) (f|grad|hvp) \(", html)


def test_summary_tables_from_the_sweep(sweep):
    from bench.analysis.summary import autodiff_ratios, cell_stats

    df = read_results([sweep[0]])
    stats = cell_stats(df)
    ratios = autodiff_ratios(df)
    assert not ratios.empty and (ratios["ratio"] > 0).all() and (ratios["passes"] == 2).all()
    assert (ratios[ratios["task"] == "eval"]["rounds"] == 2).all() and (ratios["ratio_lo"] < ratios["ratio_hi"]).all()
    # autograd's analytic side is numpy code timed in autograd's worker, in the same rounds
    assert set(ratios[ratios["backend"] == "autograd"]["variant_analytic"]) == {"eager"}
    jax = ratios[(ratios["backend"] == "jax") & (ratios["task"] == "solve")]
    assert (jax["variant"] == jax["variant_analytic"]).all()  # jit with jit, while-loop with while-loop
    assert isinstance(stats, pd.DataFrame) and (stats["samples"] >= 2).all()
    assert ((stats["time_lo"] <= stats["time_s"]) & (stats["time_s"] <= stats["time_hi"])).all()
    # and the same table beside the CSV, as the run wrote it
    written = pd.read_csv(sweep[0].with_suffix(".summary.csv"))
    assert {"ratio", "ratio_lo", "ratio_hi", "time_s", "time_lo", "time_hi", "passes", "samples"} <= set(written)
    assert len(written) == len(stats)


def test_report_has_the_problem_catalogue(sweep):
    import problems

    _, report = sweep
    html = (report / "index.html").read_text()
    assert 'id="catalogue"' in html
    for name in problems.built_in():
        assert (report / f"formula_{name}.svg").stat().st_size > 500
        assert f"<code>{name}</code>" in html


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow  # the slow tier (make test-slow)
def test_report_in_a_real_browser(sweep):
    """Headless Chromium opens the report: every image loads, no console errors, findings first."""
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    _, report = sweep
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((report / "index.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img",
                                           "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
        width = page.evaluate("document.documentElement.scrollWidth")
        first_heading = page.eval_on_selector("h2", "e => e.id")
        findings = page.eval_on_selector_all("#findings + ul li", "els => els.map(e => e.textContent)")
        browser.close()
    assert images, "the report shows no images"
    broken = [src for src, complete, natural_width in images if not complete or natural_width == 0]
    assert not broken, f"images that did not load: {broken}"
    assert not errors, errors
    assert first_heading == "findings", first_heading
    assert findings and any("autodiff gradient took" in text for text in findings), findings
    assert width <= 1280 + 20, f"the page scrolls sideways at 1280 px: {width} px wide"


def test_the_machine_roofs_and_each_cells_floor(sweep):
    """The run measures its roofs (bench.measure.roofline) and the summary prices each cell against them."""
    import json

    out, report = sweep
    (meta,) = json.loads(out.with_suffix(".meta.json").read_text()).values()
    roofs = meta["roofs"]["cpu"]
    for kernel in ("copy_GBps", "add_GBps", "dgemm_GFLOPs"):
        assert 0 < roofs[kernel]["lo"] <= roofs[kernel]["estimate"] <= roofs[kernel]["hi"], kernel
    assert roofs["bandwidth_GBps"] >= roofs["copy_GBps"]["estimate"] and roofs["array_bytes"] >= 4 * roofs["llc_bytes"]
    written = pd.read_csv(out.with_suffix(".summary.csv"))
    priced = written.dropna(subset=["floor_s"])
    assert set(priced["problem"]) == {"least_squares", "logistic"} and (priced["floor_s"] > 0).all()
    assert ((priced["over_floor"] - priced["time_s"] / priced["floor_s"]).abs() < 1e-9 * priced["over_floor"]).all()
    solve = priced[priced["task"] == "solve"]
    assert len(solve) and (solve["floor_flops"] > 0).all()  # a descent: its iterations times one step's floor
    html = (report / "index.html").read_text()
    assert 'id="roofline"' in html and "roofline_cpu.png" in html and "Against the machine (cpu:" in html
    assert (report / "roofline_cpu.png").stat().st_size > 10_000
