"""Instruction counts under callgrind (--measure instructions) and the count gate, for real: numpy and
autograd workers run under valgrind; a planted 3% of extra calls in one variant must fail the gate."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis.counts import COUNT_FACTOR, compare_counts, count_table
from bench.analysis.summary import summary_path
from bench.measure import callgrind
from bench.measure.counting import COUNT_SAMPLES
from bench.sweep.results import metadata_path

# the slow tier (make test-slow): valgrind
pytestmark = pytest.mark.slow
# the tests of the module fixture `gated` (three counted runs) in one process; the others wherever there is room
GATED = pytest.mark.xdist_group(name="counted_runs")

needs_valgrind = pytest.mark.skipif(callgrind.missing() is not None, reason=str(callgrind.missing()))
PLANT = "numpy:least_squares:100:grad:analytic/eager:3"
# the counted cells, cut to two cheap backends (both modes: numpy's analytic is checked by autograd)
CELLS = ["--backends", "numpy,autograd", "--problems", "least_squares", "--derivatives", "grad"]


COUNT_RUN = ["run", "--preset", "ci", "--n", "100", "--measure", "instructions", "--threads", "1", "--no-progress",
             *CELLS]


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """Three counted runs (a base, a quiet one, one with a 3% planted in numpy's analytic gradient),
    and `nablabench compare` of each of the last two against the first."""
    from bench.cli import main

    folder = tmp_path_factory.mktemp("counts")
    paths = {name: folder / f"{name}.csv" for name in ("base", "quiet", "planted")}
    codes = {}
    with pytest.MonkeyPatch.context() as mp:
        codes["base"] = main([*COUNT_RUN, "--out", str(paths["base"])])
        codes["quiet-run"] = main([*COUNT_RUN, "--out", str(paths["quiet"])])
        mp.setenv("NABLABENCH_PLANT", PLANT)
        codes["planted-run"] = main([*COUNT_RUN, "--out", str(paths["planted"])])
    codes["quiet"] = main(["compare", str(paths["base"]), str(paths["quiet"])])
    codes["planted"] = main(["compare", str(paths["base"]), str(paths["planted"])])
    return codes, paths, folder


@needs_valgrind
@GATED
def test_a_counted_run_checks_then_counts_every_variant(gated):
    codes, paths, _ = gated
    assert codes["base"] == codes["quiet-run"] == codes["planted-run"] == 0
    df = pd.read_csv(paths["base"])
    assert set(df["status"]) == {"ok"}
    assert df["time_s"].isna().all() and (df["instructions"] > 1000).all()  # counted, not timed
    assert (df["rel_err"] <= 1e-8).all()  # checked against the other mode before counting
    per_variant = df.groupby(["backend", "mode", "variant"]).size()
    assert set(per_variant.index) == {("numpy", "analytic", "eager"), ("autograd", "analytic", "eager"),
                                      ("numpy", "analytic", "fused"), ("autograd", "analytic", "fused"),
                                      ("autograd", "autodiff", "grad")}
    assert set(per_variant) == {5}  # COUNT_SAMPLES samples a variant
    table = count_table(paths["base"])
    assert (table["spread"] < 0.05).all()
    written = pd.read_csv(summary_path(paths["base"]))  # the run's summary: the same table
    assert written["instructions"].tolist() == pytest.approx(table["instructions"].tolist())
    # numpy's analytic gradient and autograd's analytic one run the same numpy formula
    analytic = table[(table["mode"] == "analytic") & (table["variant"] == "eager")].set_index("backend")["instructions"]
    assert analytic["numpy"] == pytest.approx(analytic["autograd"], rel=0.02)
    autodiff = table[table["mode"] == "autodiff"]["instructions"].iloc[0]
    assert autodiff > 3 * analytic["numpy"]  # autograd's tape: its overhead is what counts show


@needs_valgrind
@GATED
def test_two_fresh_runs_agree_and_the_gate_catches_a_planted_three_percent(gated):
    codes, paths, _ = gated
    assert codes["quiet"] == 0  # no false alarm
    quiet = compare_counts(paths["base"], paths["quiet"])
    assert {v.status for v in quiet} == {"same"}
    assert max(abs(v.ratio - 1) for v in quiet) < 0.01  # the reproducibility claim: within 1%
    assert codes["planted"] == 1  # the gate fails
    planted = {v.variant: v for v in compare_counts(paths["base"], paths["planted"])}
    hit = planted["eval least_squares n=100 numpy/cpu analytic grad eager"]
    assert hit.status == "slower" and hit.ratio == pytest.approx(1.03, abs=0.006)
    assert {v.status for name, v in planted.items() if v is not hit} == {"same"}
    assert COUNT_FACTOR < 1.03


@needs_valgrind
@GATED
def test_a_version_change_is_reported_as_such(gated, tmp_path):
    _, paths, _ = gated
    moved = tmp_path / "upgraded.csv"
    shutil.copyfile(paths["planted"], moved)
    meta = json.loads(metadata_path(paths["planted"]).read_text())
    for block in meta.values():  # one block a run_id
        block["versions"]["numpy"] = "9.9.9"
    metadata_path(moved).write_text(json.dumps(meta))
    verdicts = {v.variant: v for v in compare_counts(paths["base"], moved)}
    hit = verdicts["eval least_squares n=100 numpy/cpu analytic grad eager"]
    # said, and never a reason to pass: an unpinned release would otherwise silence the gate
    assert hit.status == "slower" and "numpy" in hit.versions and "9.9.9" in hit.versions
    from bench.cli import main

    assert main(["compare", str(paths["base"]), str(moved)]) == 1


@needs_valgrind
@GATED
def test_history_tracks_counts_across_runs(gated, tmp_path):
    from bench.analysis.history import build_history

    _, paths, _ = gated
    index = build_history([paths["base"], paths["planted"]], tmp_path / "history")
    html = index.read_text()
    assert "history_eval_least_squares_grad_instructions.png" in html and "numpy " in html  # versions shown
    entries = json.loads((tmp_path / "history" / "benchmark-data.json").read_text())
    assert {e["unit"] for e in entries} == {"instructions"}
    newest = {e["name"]: e["value"] for e in entries}
    planted = count_table(paths["planted"]).query("variant == 'eager'").set_index("backend")
    assert newest["eval least_squares n=100 numpy/cpu analytic grad eager"] == pytest.approx(
        planted.loc["numpy", "instructions"])


@needs_valgrind
@GATED
def test_a_counted_run_on_dask_counts_what_a_local_one_does(gated, tmp_path):
    """The Dask executor's workers start their backend workers under callgrind too (a worker a CPU
    there as here): the same cells give the same counts as the local baseline's."""
    pytest.importorskip("distributed", reason="distributed is not installed (pip install nablabench[dask])")
    from bench.cli import main

    _, paths, _ = gated
    out = tmp_path / "dask.csv"
    assert main(["run", "--preset", "ci", "--n", "100", "--measure", "instructions", "--threads", "1", *CELLS,
                 "--executor", "dask", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    verdicts = compare_counts(paths["base"], out)
    assert len(verdicts) == 5 and {v.status for v in verdicts} == {"same"}  # eager and fused formulas, autograd's
    assert max(abs(v.ratio - 1) for v in verdicts) < 0.01


@needs_valgrind
def test_measure_cycles_estimates_every_variant_from_the_cache_simulation(tmp_path):
    """numpy's analytic gradient keeps its data in the caches: its dumps leave the zero misses out,
    and its estimate must still be there (an instruction is one L1 hit at least)."""
    from bench.cli import main

    out = tmp_path / "cycles.csv"
    assert main(["run", "--preset", "ci", "--n", "100", "--measure", "cycles", "--threads", "1", "--backends", "numpy",
                 "--problems", "least_squares", "--no-progress", "--out", str(out)]) == 0
    table = count_table(out)
    assert len(table) == 4 and table["est_cycles"].notna().all()  # grad and hvp, eager and fused
    assert (table["est_cycles"] >= table["instructions"]).all()


@needs_valgrind
@GATED
def test_a_counted_runs_report_opens_on_autodiffs_instructions_over_the_analytic(gated, tmp_path):
    """`nablabench report` of a counted run: findings first (autograd's tape several times numpy's
    formula's instructions), every variant's count with its ratio, in a real browser; several counted
    runs, or counted mixed with timed, are usage errors."""
    from bench.api import UsageError, build_report
    from bench.cli import main

    _, paths, _ = gated
    assert main(["report", str(paths["base"]), "--out", str(tmp_path / "report")]) == 0
    index = tmp_path / "report" / "index.html"
    table = count_table(paths["base"]).set_index(["mode", "backend", "variant"])
    ratio = (table.loc[("autodiff", "autograd", "grad"), "instructions"]
             / table.loc[("analytic", "autograd", "eager"), "instructions"])
    with pytest.raises(UsageError, match="compare"):
        build_report([paths["base"], paths["quiet"]], out=tmp_path / "two")
    timed = tmp_path / "timed.csv"
    pd.read_csv(paths["base"]).assign(instructions=np.nan, time_s=1e-5).to_csv(timed, index=False)
    shutil.copyfile(metadata_path(paths["base"]), metadata_path(timed))
    with pytest.raises(UsageError, match="mix"):
        build_report([paths["base"], timed], out=tmp_path / "mixed")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(index.as_uri(), wait_until="load")
        first_heading = page.eval_on_selector("h2", "e => e.textContent")
        findings = page.eval_on_selector_all("#findings li", "els => els.map(e => e.textContent)")
        rows = page.eval_on_selector_all("#counts tr", "els => els.map(e => e.textContent)")
        browser.close()
    assert not errors, errors
    assert first_heading.startswith("Findings")
    assert findings == [f"autograd, grad: {ratio:.2f}× (eval least_squares n=100 autograd/cpu autodiff grad grad)"]
    assert len(rows) == 1 + 5  # the header and the five counted variants
    assert any(f"{ratio:.2f}× (eager)" in row for row in rows)


def test_without_valgrind_counting_is_a_usage_error_naming_the_package(monkeypatch, capsys, tmp_path):
    import bench.ci as ci
    from bench.cli import main

    monkeypatch.setattr(callgrind.shutil, "which", lambda name: None)
    assert "apt-get install -y valgrind" in callgrind.missing()
    code = main(["run", "--preset", "ci", "--measure", "instructions", "--out", str(tmp_path / "x.csv")])
    assert code == 2 and not (tmp_path / "x.csv").exists()
    assert "valgrind" in capsys.readouterr().err
    assert ci.main(["--gates", "counts", "--base", "HEAD", "--out", str(tmp_path / "ci")]) == 2  # not a pass
    assert "valgrind" in capsys.readouterr().err


def test_counting_is_for_the_cpu_and_bad_measures_are_refused(capsys, tmp_path):
    from bench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--measure", "seconds"])
    assert exit_.value.code == 2 and "instructions" in capsys.readouterr().err
    if callgrind.missing() is None:
        assert main(["run", "--measure", "instructions", "--devices", "cuda", "--out", str(tmp_path / "x.csv")]) == 2
        assert "CPU only" in capsys.readouterr().err
        # callgrind's collection switch is a thread's own: a count is of one thread
        assert main(["run", "--measure", "instructions", "--threads", "2", "--out", str(tmp_path / "x.csv")]) == 2
        assert "--threads 1" in capsys.readouterr().err
        assert not (tmp_path / "x.csv").exists()


@needs_valgrind
@GATED
def test_a_run_resumes_with_the_measure_it_began_with(gated, tmp_path, capsys):
    from bench.cli import main

    _, paths, _ = gated
    counted_run = tmp_path / "counted.csv"
    shutil.copyfile(paths["base"], counted_run)
    shutil.copyfile(metadata_path(paths["base"]), metadata_path(counted_run))
    assert main(["run", "--preset", "ci", "--n", "100", *CELLS, "--resume", "--no-progress",
                 "--out", str(counted_run)]) == 2
    assert "resume it with the same --measure, not time" in capsys.readouterr().err


def test_counted_parts_at_once_keep_their_workers_on_cpu_slices_of_their_own(monkeypatch):
    """The threaded local executor (counted runs): two new backends offered at once get two slices;
    a backend whose worker keeps a slice another part runs on waits."""
    import threading

    from bench.core.cell import Cell
    from bench.sweep import executors

    release, slots = threading.Event(), {}

    def fake_run_part(part, settings, workers, *, slot):
        slots.setdefault(part.backend, set()).add(slot)
        release.wait(10)
        return executors.Outcome(rows=[])

    monkeypatch.setattr(executors, "run_part", fake_run_part)
    pool = executors.LocalExecutor(width=2)
    pool.start(executors.Settings(backends=("numpy", "jax", "torch"), measure="instructions"))

    def part(backend):
        return Cell(task="eval", problem="least_squares", source="", n=100, backend=backend, device="cpu",
                    derivative="grad", modes=("analytic",))

    assert pool.offer(part("numpy")) and pool.offer(part("jax"))
    assert not pool.has_room()
    release.set()
    done = {pool.next_done()[0].backend, pool.next_done()[0].backend}
    assert done == {"numpy", "jax"} and slots == {"numpy": {0}, "jax": {1}}
    release.clear()
    assert pool.offer(part("jax")) and pool.offer(part("torch"))  # jax's worker keeps slice 1; torch's is new
    pool.running.pop(next(f for f, p in pool.running.items() if p.backend == "jax"))  # as if jax's part ended
    assert pool.has_room() and not pool.offer(part("numpy"))  # numpy's worker keeps slice 0, where torch runs
    release.set()
    assert pool.next_done()[0].backend == "torch"
    pool.finish()
    assert slots == {"numpy": {0}, "jax": {1}, "torch": {0}}


def test_a_call_that_raises_inside_a_sample_leaves_collection_off():
    """Collection is toggled back off even when a call raises, or the worker's later samples would
    count the time between their calls instead of the calls."""
    from bench.measure.counting import Counter

    toggles = []
    counter = Counter.__new__(Counter)  # its client only: no valgrind needed
    counter.client = type("Client", (), {"toggle_collect": lambda self: toggles.append(1)})()

    def call():
        raise FloatingPointError("a call that fails mid-sample")

    with pytest.raises(FloatingPointError):
        counter.count(call, lambda out: out, 3, "sample")
    assert len(toggles) == 2  # on, then off again


def test_the_cycle_estimate_is_iai_callgrinds_formula():
    events = dict(Ir=1000, Dr=300, Dw=200, I1mr=10, D1mr=20, D1mw=10, ILmr=1, DLmr=2, DLmw=1)
    l1_hits = 1000 + 300 + 200 - 40
    ll_hits = 40 - 4
    assert callgrind.estimated_cycles(events) == l1_hits + 5 * ll_hits + 35 * 4
    assert callgrind.estimated_cycles({"Ir": 5}) is None  # no cache simulation: no estimate


def test_a_dump_is_read_by_its_label(tmp_path):
    dump = tmp_path / "callgrind.out.12.3"
    dump.write_text("version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: Client Request: analytic/eager sample 0\n"
                    "events: Ir\nfn=(1) main\n0 5\nsummary: 1234\ntotals: 1234\n")
    assert callgrind.read_dump(dump) == ("analytic/eager sample 0", {"Ir": 1234})
    assert callgrind.read_dumps(tmp_path) == {"analytic/eager sample 0": {"Ir": 1234}}
    # a cost line may leave its trailing zeros out (a sample without a cache miss of the last level)
    dump.write_text("desc: Trigger: Client Request: s\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
                    "totals: 1000 300 200 10 20 10\n")
    events = callgrind.read_dump(dump)[1]
    assert events["DLmw"] == 0 and callgrind.estimated_cycles(events) == 1460 + 5 * 40


@needs_valgrind
@GATED
def test_compare_reads_counted_runs_by_their_counts(gated, tmp_path, capsys):
    from bench.cli import main

    _, paths, _ = gated
    assert main(["compare", str(paths["base"]), str(paths["quiet"])]) == 0
    assert main(["compare", str(paths["base"]), str(paths["planted"])]) == 1
    out = capsys.readouterr().out
    assert f"at {COUNT_FACTOR:g}x" in out and "slower" in out and "numpy/cpu analytic grad eager" in out
    assert main(["compare", str(paths["base"]), str(paths["planted"]), "--factor", "1.05"]) == 0  # 3% < 5%
    timed = tmp_path / "timed.csv"
    pd.read_csv(paths["base"]).assign(instructions=np.nan, time_s=1e-4).to_csv(timed, index=False)
    assert main(["compare", str(paths["base"]), str(timed)]) == 2
    assert "compare counted runs with counted runs" in capsys.readouterr().err


@needs_valgrind
@GATED
def test_bench_compare_reads_counted_runs_as_the_command_line_does(gated, tmp_path):
    """bench.compare of two counted runs: their instructions per call, the same verdicts and exit
    as `nablabench compare`; a counted run against a timed one is a usage error there too."""
    import bench

    _, paths, _ = gated
    quiet, planted = bench.compare(paths["base"], paths["quiet"]), bench.compare(paths["base"], paths["planted"])
    assert quiet.passed and quiet.factor == COUNT_FACTOR and {v.status for v in quiet.counts} == {"same"}
    assert not planted.passed and planted.slower == 1
    (slower,) = [v for v in planted.counts if v.status == "slower"]
    assert "numpy/cpu analytic grad eager" in str(planted) and 1.02 < slower.ratio < 1.05
    assert bench.compare(paths["base"], paths["planted"], factor=1.05).passed
    timed = tmp_path / "timed.csv"
    pd.read_csv(paths["base"]).assign(instructions=np.nan, time_s=1e-4).to_csv(timed, index=False)
    with pytest.raises(bench.UsageError, match="compare counted runs with counted runs"):
        bench.compare(paths["base"], timed)


@needs_valgrind
def test_a_counted_ab_catches_a_two_percent_slower_gradient_in_its_own_passes(tmp_path):
    """`nablabench ab --measure instructions`, for real: both sides counted in the same run (one pass of
    COUNT_SAMPLES samples: a count does not drift); scripts/ab_rates.py's plant (two Python
    statements and a call in least_squares' gradient, about 2.3% of numpy's instructions a call at n = 100) is
    `slower` at AB_COUNT_FACTOR, the unchanged cell `same`."""
    import importlib.util

    import bench
    from bench.core import defaults

    spec = importlib.util.spec_from_file_location("ab_rates", Path(__file__).parents[1] / "scripts" / "ab_rates.py")
    ab_rates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab_rates)
    tree = ab_rates.planted_tree(tmp_path / "planted", extra=0, loop=2)
    result = bench.ab(".", str(tree), backends="numpy", problems="least_squares,logistic", derivatives="grad",
                      n="100", measure="instructions", out=tmp_path / "ab.csv", progress=False)
    rows = pd.read_csv(tmp_path / "ab.csv")
    assert set(rows.groupby(["backend", "problem", "variant"]).size()) == {COUNT_SAMPLES}
    verdicts = {v.variant: v for v in result.verdicts}
    planted = verdicts.pop("eval least_squares n=100 numpy/cpu analytic grad eager")
    assert planted.status == "slower" and defaults.AB_COUNT_FACTOR < planted.estimate < 1.04, str(result)
    assert verdicts and {v.status for v in verdicts.values()} == {"same"}, str(result)
    assert not result.passed and not result.failures
