"""Fault injection: one failing, slow or out-of-memory cell never kills a sweep; Ctrl-C resumes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import interruptible
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.sweep.results import read_results

# the tests of the module fixture `full_run` (a real sweep) in one process; the others wherever there is room
FULL_RUN = pytest.mark.xdist_group(name="faults_full_run")
ROOT = Path(__file__).resolve().parent.parent
FAST = ["--backends", "numpy,autograd", "--tasks", "eval", "--problems", "least_squares",
        "--derivatives", "grad", "--rounds", "1", "--max-passes", "2", "--sample-time", "0.001", "--no-progress"]


def run(tmp_path, *extra) -> tuple[int, object]:
    out = tmp_path / "r.csv"
    code = main(["run", *FAST, "--out", str(out), *extra])
    return code, read_results([out])


def by_n(df, backend):
    part = df[df["backend"] == backend]
    return {n: sorted(set(g["status"])) for n, g in part.groupby("n")}


def test_killed_worker_costs_one_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", "crash:numpy:least_squares:24")
    code, df = run(tmp_path, "--n", "8,24,64")
    assert code == 0
    assert by_n(df, "numpy") == {8: ["ok"], 24: ["crashed", "ok"], 64: ["skipped"]}
    crashed = df[df["status"] == "crashed"]["message"].iloc[0]
    assert "SIGKILL" in crashed and "finished before: analytic/eager" in crashed
    assert by_n(df, "autograd") == {8: ["ok"], 24: ["ok"], 64: ["ok"]}


def test_a_crash_in_round_k_keeps_the_rounds_before_it_and_names_the_variant(tmp_path, monkeypatch):
    """Before, a cell's samples were held until all its rounds ended: a crash in round 3 lost rounds 0-2."""
    monkeypatch.setenv("NABLABENCH_FAULT", "crash@3:autograd:least_squares:8")
    code, df = run(tmp_path, "--n", "8", "--rounds", "5", "--max-rounds", "5", "--passes", "1", "--max-passes", "1")
    assert code == 0
    cell = df[df["backend"] == "autograd"]
    kept = cell[cell["status"] == "ok"]
    variants = {("analytic", "eager"), ("analytic", "fused"), ("autodiff", "grad")}
    assert set(zip(kept["mode"], kept["variant"])) == variants
    assert sorted(set(kept["repeat"])) == [0, 1, 2] and len(kept) == 3 * len(variants)  # three whole rounds
    (message,) = cell[cell["status"] == "crashed"]["message"]
    assert "SIGKILL" in message and "while timing " in message and "round 3" in message, message
    assert set(df[df["backend"] == "numpy"]["status"]) == {"ok"}


@pytest.mark.slow  # the slow tier (make test-slow)
def test_hung_cell_times_out_and_larger_sizes_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", "hang:autograd:least_squares:8")
    start = time.monotonic()
    code, df = run(tmp_path, "--n", "8,24", "--eval-budget", "1")
    assert code == 0 and time.monotonic() - start < 60
    assert by_n(df, "autograd") == {8: ["ok", "timeout"], 24: ["skipped"]}
    assert "time budget" in df[df["status"] == "timeout"]["message"].iloc[0]
    assert by_n(df, "numpy") == {8: ["ok"], 24: ["ok"]}


def test_nan_is_a_status_never_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", "nan:numpy:least_squares:8")
    out = tmp_path / "r.csv"
    assert main(["run", "--backends", "numpy", "--problems", "least_squares", "--n", "8,16", "--tasks",
                 "eval,solve", "--derivatives", "grad,hess", "--rounds", "1",
                 "--max-passes", "2", "--sample-time", "0.001", "--no-progress",
                 "--out", str(out)]) == 0
    df = read_results([out])
    bad = df[df["n"] == 8]
    assert set(bad["status"]) == {"nan"} and bad["time_s"].isna().all()
    assert set(df[df["n"] == 16]["status"]) == {"ok"}


def test_exception_in_a_cell_is_an_error_row(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", "error:numpy:least_squares:8")
    code, df = run(tmp_path, "--n", "8,24")
    assert code == 0
    assert by_n(df, "numpy") == {8: ["error"], 24: ["ok"]}
    assert "injected fault" in df[df["status"] == "error"]["message"].iloc[0]


def test_memory_guard_skips_before_allocating(tmp_path):
    # 0.1% of free memory: n = 8 fits, a dense Hessian at n = 4000 (128 MB) does not.
    out = tmp_path / "r.csv"
    assert main(["run", "--backends", "numpy", "--tasks", "eval", "--problems", "quadratic",
                 "--derivatives", "hess", "--n", "8,4000,5000", "--rounds", "1",
                 "--max-passes", "2", "--sample-time", "0.001", "--memory-fraction", "0.001",
                 "--no-progress", "--out", str(out)]) == 0
    df = read_results([out])
    assert by_n(df, "numpy") == {8: ["ok"], 4000: ["skipped_memory"], 5000: ["skipped"]}
    assert "GiB" in df[df["status"] == "skipped_memory"]["message"].iloc[0]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "bench", "run", *FAST, "--n-logspace", "0.7,2,14", *args]


def _keys(df):
    cols = ["task", "problem", "n", "backend", "device", "derivative", "mode", "variant", "repeat"]
    return [tuple(r) for r in df[cols].itertuples(index=False, name=None)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    full = tmp_path_factory.mktemp("full") / "full.csv"
    subprocess.run(_cli("--out", str(full)), cwd=ROOT, check=True, capture_output=True)
    return full


@pytest.mark.slow  # the slow tier (make test-slow)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@FULL_RUN
def test_a_run_killed_at_any_point_resumes_with_no_row_lost_or_twice(tmp_path, data, full_run):
    """SIGKILL of the parent (no handler runs, its lock is left behind) after a number of rows drawn at
    random (Hypothesis): --resume takes the stale lock over and finishes the file, every variant's
    parts there once."""
    rows = data.draw(st.integers(1, full_run.read_text().count("\n") - 2), label="rows before the kill")
    part = tmp_path / f"killed-{rows}.csv"
    proc = subprocess.Popen(_cli("--out", str(part)), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (part.exists() and part.read_text().count("\n") > rows):
        time.sleep(0.01)
    proc.kill()
    proc.communicate(timeout=60)
    done = subprocess.run(_cli("--out", str(part), "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "took over the lock" in done.stderr
    resumed = _keys(read_results([part]))
    assert len(resumed) == len(set(resumed)), "a row was written twice"
    parts = {k[:-1] for k in resumed}
    assert parts == {k[:-1] for k in _keys(read_results([full_run]))}, "a variant lost a part"


@pytest.mark.slow  # the slow tier (make test-slow)
def test_resuming_a_finished_run_adds_nothing(tmp_path):
    """The stopping rule reads the rows alone (its plan from the first pass, a part's price from its
    timed seconds), so a resume decides as the run did: a finished run has nothing left to run."""
    out = tmp_path / "done.csv"
    more = ("--max-passes", "5", "--rounds", "2", "--out", str(out))
    subprocess.run(_cli(*more), cwd=ROOT, check=True, capture_output=True)
    before = _keys(read_results([out]))
    assert max(read_results([out])["part"]) >= 2  # cells took planned passes beyond their floor
    again = subprocess.run(_cli(*more, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _keys(read_results([out])) == before


@pytest.mark.slow  # the slow tier (make test-slow)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@FULL_RUN
def test_interrupt_leaves_a_valid_csv_and_resume_completes_it(tmp_path, sig, full_run):
    full = full_run
    part = tmp_path / "part.csv"
    proc = subprocess.Popen(_cli("--out", str(part)), cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # interrupt once a few cells are in
        if part.exists() and part.read_text().count("\n") > 12:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    interrupted = read_results([part])  # parses: no partial line
    assert 0 < len(interrupted) < len(read_results([full]))
    subprocess.run(_cli("--out", str(part), "--resume"), cwd=ROOT, check=True, capture_output=True)
    resumed = _keys(read_results([part]))
    assert len(resumed) == len(set(resumed)), "a row was written twice"
    assert sorted(resumed) == sorted(_keys(read_results([full])))
    meta = (part.with_suffix(".meta.json")).read_text()
    assert '"interrupted": true' in meta and '"interrupted": false' in meta


def test_no_orphan_workers_after_a_sweep(tmp_path):
    import psutil

    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    run(tmp_path, "--n", "8")
    after = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True) if p.is_running()
             and p.status() != psutil.STATUS_ZOMBIE}
    assert after <= before


def test_what_a_backend_cannot_differentiate_is_recorded_not_dropped(tmp_path):
    # autograd has no VJP for eigvalsh; nested autodiff declines orders past its limit, and an
    # analytic result that nothing independent can check is not timed. Each is a row with a reason.
    out = tmp_path / "limits.csv"
    code = main(["run", "--preset", "library", "--backends", "numpy,autograd", "--problems", "eig_sum,tanh_dk",
                 "--derivatives", "grad,dk", "--n", "3,11", "--rounds", "1",
                 "--max-passes", "2", "--sample-time", "0.001", "--no-progress", "--out", str(out)])
    assert code == 0
    df = read_results([out])
    rows = {(r.problem, r.n, r.backend, r.variant): (r.status, r.message) for r in df.itertuples()}
    assert rows["eig_sum", 3, "autograd", "grad"][0] == "error"
    assert "VJP of eigvalsh" in rows["eig_sum", 3, "autograd", "grad"][1]
    assert rows["eig_sum", 3, "numpy", "eager"] == ("skipped", rows["eig_sum", 3, "numpy", "eager"][1])
    assert "unchecked" in rows["eig_sum", 3, "numpy", "eager"][1]
    assert {rows["tanh_dk", 3, b, v][0] for b, v in (("autograd", "nested-grad"), ("numpy", "eager"))} == {"ok"}
    assert rows["tanh_dk", 11, "autograd", "nested-grad"][0] == "skipped"
    assert "order k=11 > 9" in rows["tanh_dk", 11, "autograd", "nested-grad"][1]
    assert rows["tanh_dk", 11, "numpy", "eager"][0] == "skipped"
    # each (problem, n, backend) is present: nothing was dropped
    assert {(p, n, b) for p, n, b, _ in rows} == {(p, n, b) for p in ("eig_sum", "tanh_dk") for n in (3, 11)
                                                 for b in ("numpy", "autograd")}
    # and the report draws the k-th derivatives by order, skipped orders and all
    from bench.render.report import build_report

    index = build_report([out], tmp_path / "report")
    assert (tmp_path / "report" / "orders_tanh_dk_cpu.png").stat().st_size > 10_000
    assert "Derivatives of order k" in index.read_text()


@pytest.mark.slow  # the slow tier (make test-slow)
def test_resume_remembers_which_sizes_were_blocked(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", "crash:numpy:least_squares:24")
    out = tmp_path / "r.csv"
    assert main(["run", *FAST, "--backends", "numpy", "--n", "8,24", "--out", str(out)]) == 0
    monkeypatch.delenv("NABLABENCH_FAULT")
    assert main(["run", *FAST, "--backends", "numpy", "--n", "8,24,64", "--out", str(out), "--resume"]) == 0
    df = read_results([out])
    assert by_n(df, "numpy") == {8: ["ok"], 24: ["crashed", "ok"], 64: ["skipped"]}
    assert "skipped after n=24 ended `crashed`" in df[df["n"] == 64]["message"].iloc[0]


@pytest.mark.slow  # the slow tier (make test-slow)
def test_each_worker_keeps_its_own_metadata_and_drift_series(tmp_path):
    # Two workers of one backend on two devices (numpy ignores the device name, so this runs on
    # any machine): neither's metadata overwrites the other's.
    from bench.core.cell import Cell
    from bench.sweep.executors import Settings
    from bench.sweep.runner import run_sweep

    cells = [Cell(task="eval", problem="least_squares", n=8, backend="numpy", device=device, derivative="grad",
                  modes=("analytic",), rounds=3, max_rounds=3, max_passes=2) for device in ("cpu", "cuda")]
    out = tmp_path / "r.csv"
    run_sweep(cells, Settings(backends=("numpy",), devices=("cpu", "cuda")), out, resume=False, progress=False)
    (meta,) = __import__("json").loads(out.with_suffix(".meta.json").read_text()).values()
    assert set(meta["backends"]) == {"numpy/cpu", "numpy/cuda"}
    assert {m["device"] for m in meta["backends"].values()} == {"cpu", "cuda"}
    for worker in ("numpy/cpu", "numpy/cuda"):
        drift = meta["drift"][worker]
        assert set(drift) == {"start", "cells", "end"} and len(drift["cells"]) == 2  # one per pass
        assert 0 < drift["start"]["ref_numpy_s"] < 1 and 0 < drift["end"]["ref_python_s"] < 1
    df = read_results([out])
    assert (df["ref_numpy_s"] > 0).all() and (df["ref_python_s"] > 0).all()
