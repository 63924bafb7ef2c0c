"""--executor dask on a real Dask cluster: the rows a local run gives, from the same parent; Ctrl-C,
--resume, a dead worker and bad input behave as they do locally."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("dask", reason="dask is not installed (pip install nablabench[dask])")
pytest.importorskip("distributed", reason="distributed is not installed (pip install nablabench[dask])")

from helpers import interruptible, session_problem  # noqa: E402

import bench  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.core.schema import VARIANT_KEY  # noqa: E402
from bench.sweep.results import read_results  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name=__name__)]  # module fixtures: one process
ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
TINY = ["--preset", "quick", "--problems", "least_squares", "--n", "8,24", "--derivatives", "f,grad",
        "--rounds", "1", "--max-rounds", "1", "--max-passes", "2", "--repeats", "2", "--sample-time", "0.001",
        "--threads", "1", "--no-progress",
        "--backends", "numpy,autograd"]
# numpy's worker is killed mid-cell at n = 8: a crashed cell, and n = 24 of each family skipped
FAULT = {"NABLABENCH_FAULT": "crash:numpy:least_squares:8"}


def _rows(df) -> dict[tuple, str]:
    keys = [tuple(r) for r in df[list(VARIANT_KEY) + ["repeat", "part"]].itertuples(index=False, name=None)]
    assert len(keys) == len(set(keys)), "a row was written twice"
    return dict(zip(keys, df["status"]))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "local.csv"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NABLABENCH_FAULT", FAULT["NABLABENCH_FAULT"])
        assert main(["run", *TINY, "--out", str(out)]) == 0
    return read_results([out])


def test_a_local_cluster_gives_the_rows_of_a_local_run(tmp_path, local_run, monkeypatch):
    monkeypatch.setenv("NABLABENCH_FAULT", FAULT["NABLABENCH_FAULT"])
    out = tmp_path / "dask.csv"
    assert main(["run", *TINY, "--out", str(out), "--executor", "dask", "--workers", "2"]) == 0
    df = read_results([out])
    assert _rows(df) == _rows(local_run)
    assert {"ok", "crashed", "skipped"} <= set(df["status"])  # the crash blocked n = 24, as locally
    ran = df[df["status"] != "skipped"]
    assert ran["host"].notna().all() and ran["machine"].notna().all() and (ran["host_workers"] == 2).all()
    assert local_run[local_run["status"] != "skipped"]["host_workers"].eq(1).all()
    (meta,) = json.loads(out.with_suffix(".meta.json").read_text()).values()
    assert meta["executor"].startswith("dask") and any("share host" in w for w in meta["warnings"])
    assert set(meta["machines"]) == set(ran["host"])
    slices = {tuple(info["cpu_affinity"]) for info in meta["backends"].values()}
    # the two Dask workers on distinct CPUs, where this pytest worker has two (all: the test below)
    assert len(slices) == min(2, len(os.sched_getaffinity(0))), slices


def test_bench_workers_on_one_host_take_distinct_cpu_slices():
    from cpus import MACHINE_CPUS

    if len(MACHINE_CPUS) < 2:
        pytest.skip("one CPU: every slot shares it")
    code = ("import os, sys; os.sched_setaffinity(0, {cpus}); from bench.measure.process import limit_threads; "
            "limit_threads(1, int(sys.argv[1])); print(sorted(os.sched_getaffinity(0)))").format(cpus=MACHINE_CPUS)
    taken = [subprocess.run([sys.executable, "-c", code, str(slot)], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip() for slot in range(len(MACHINE_CPUS) + 1)]
    # slot i takes the i-th CPU from the end; one slot more than CPUs counts round again
    assert taken == [str([cpu]) for cpu in reversed(MACHINE_CPUS)] + [str([MACHINE_CPUS[-1]])], taken


def test_workers_started_by_hand_with_the_dask_command_line(tmp_path, local_run, registry):
    from distributed import Client

    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False", PYTHONPATH=str(ROOT), **FAULT)
    scheduler_file = tmp_path / "scheduler.json"
    quiet = dict(env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the workers wait for the scheduler file to appear
    processes = [subprocess.Popen([DASK, "scheduler", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **quiet)]
    processes += [subprocess.Popen([DASK, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                    "--resources", "bench=1", "--no-dashboard"], **quiet) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "cluster.csv"
        assert main(["run", *TINY, "--out", str(out), "--executor", "dask", "--scheduler", address]) == 0
        assert _rows(read_results([out])) == _rows(local_run)
        # a problem made as a notebook cell makes one reaches workers that cannot import it: by value
        mine = bench.run(problems=[session_problem("dask_session")], backends=["numpy", "autograd"], tasks=["eval"],
                         n=[8], derivatives=["grad"], rounds=1, max_rounds=1, max_passes=1, sample_time=0.001,
                         threads=1, progress=False, executor="dask", scheduler=address, out=tmp_path / "mine.csv")
        assert set(mine.df["status"]) == {"ok"} and set(mine.df["problem"]) == {"dask_session"}
        # the cluster stays up, and the sweep's worker processes are gone from it
        for nanny in processes[1:]:
            for worker in psutil.Process(nanny.pid).children():
                assert not _spawned(worker), "a worker process outlived the sweep"
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "bench", "run", *TINY, "--executor", "dask", "--workers", "2", *args]


def _wait_for_rows(path: Path, lines: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > lines:
            return
        time.sleep(0.05)
    raise AssertionError(f"no rows in {path} after 90 s")


def test_interrupt_leaves_a_valid_csv_and_resume_completes_it(tmp_path, local_run):
    part = tmp_path / "part.csv"
    env = dict(os.environ, **FAULT)
    proc = subprocess.Popen(_cli("--out", str(part)), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    _wait_for_rows(part, 6)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "--resume" in err
    interrupted = read_results([part])  # parses: no partial line
    assert 0 < len(interrupted) < len(local_run)
    # the parent's rows and metadata are those of a local run: either executor resumes them
    subprocess.run([sys.executable, "-m", "bench", "run", *TINY, "--out", str(part), "--resume"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    assert _rows(read_results([part])) == _rows(local_run)
    meta = part.with_suffix(".meta.json").read_text()
    assert '"interrupted": true' in meta and '"interrupted": false' in meta


def _spawned(process: psutil.Process) -> list[psutil.Process]:
    """The children multiprocessing spawned (not its resource tracker); a process that ends while
    we look (a zombie, or gone) is not one of them."""
    found = []
    try:
        children = process.children()
    except psutil.Error:
        return []
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _cpu_percent(process: psutil.Process, interval: float) -> float:
    try:
        return process.cpu_percent(interval)
    except psutil.Error:
        return 0.0


def _age(process: psutil.Process) -> float:
    try:
        return time.time() - process.create_time()
    except psutil.Error:
        return 0.0


def _dask_workers(parent: int) -> list[psutil.Process]:
    """A LocalCluster's worker processes that have started worker processes of their own."""
    return [p for p in _spawned(psutil.Process(parent)) if _spawned(p)]


def test_a_dask_worker_killed_mid_sweep_costs_a_retry(tmp_path, local_run):
    out = tmp_path / "killed.csv"
    env = dict(os.environ, **FAULT)
    # samples of 50 ms (the same rows as TINY's): a part lasts long enough to be caught running
    proc = subprocess.Popen(_cli("--out", str(out), "--sample-time", "0.05"), cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_rows(out, 6)
    deadline = time.monotonic() + 30
    while True:  # the Dask worker whose bench worker is busy now (an idle one has no part to lose)
        load, victim = max(((sum(_cpu_percent(c, 0.1) for c in _spawned(p)), p) for p in _dask_workers(proc.pid)),
                           key=lambda pair: pair[0])
        if load > 50 or time.monotonic() > deadline:
            break
    victim.kill()  # SIGKILL: the part it was running is lost with it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    df = read_results([out])
    rows = _rows(df)
    assert rows.keys() == _rows(local_run).keys()  # nothing lost, nothing twice
    assert set(rows.values()) <= {"ok", "crashed", "skipped"}
    assert "a Dask worker died running" in err and "running it again" in err


def test_a_part_whose_worker_dies_twice_is_crashed(monkeypatch):
    """The crash rule at the executor: the part hangs, so it is certainly in flight when its Dask
    worker is killed; the second death gives one `crashed` row that blocks larger sizes."""
    from bench.core.cell import Cell
    from bench.sweep.cluster import DaskExecutor
    from bench.sweep.executors import Settings

    monkeypatch.setenv("NABLABENCH_FAULT", "hang:numpy:least_squares:8")
    part = Cell(task="eval", problem="least_squares", n=8, backend="numpy", device="cpu", derivative="grad",
                modes=("analytic",), rounds=3, max_rounds=3, min_sample_s=0.001, time_budget_s=100.0)
    executor = DaskExecutor.open(None, workers=1)
    killed = []

    def kill_twice():
        while len(killed) < 2:
            for worker in _dask_workers(os.getpid()):
                benches = _spawned(worker)
                # hung: started a while ago, and asleep since
                if worker.pid not in killed and benches and all(_age(b) > 1.5 and _cpu_percent(b, 0.5) < 5
                                                                for b in benches):
                    killed.append(worker.pid)
                    for process in (worker, *benches):  # a hung bench process never reads its pipe again
                        try:
                            process.kill()
                        except psutil.Error:
                            pass
            time.sleep(0.2)

    try:
        executor.start(Settings(backends=("numpy",), threads=1))
        assert executor.offer(part)
        killer = threading.Thread(target=kill_twice, daemon=True)
        killer.start()
        done, outcome = executor.next_done()
        executor.finish()
    finally:
        executor.close()
    assert done == part and len(killed) == 2
    (row,) = outcome.rows
    assert row["status"] == "crashed" and "died, twice" in row["message"]
    assert outcome.blocks == "skipped after n=8 ended `crashed`"


@pytest.mark.parametrize("argv, expected", [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler and --workers need --executor dask"),
    (["--workers", "2"], "expected --executor local or dask"),
    (["--executor", "dask", "--workers", "0"], "--workers must be >= 1"),
    (["--executor", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
    (["--executor", "dask", "--scheduler", "not an address"], "missing port number"),
    (["--executor", "dask", "--scheduler", "foo://127.0.0.1:1"], "unknown address scheme"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"], "Cannot reach the Dask scheduler `tcp://127.0.0.1:1`"),
])
def test_bad_executor_input_exits_2_before_any_work(argv, expected, tmp_path, capsys):
    out = tmp_path / "never.csv"
    start = time.monotonic()
    assert main(["run", *TINY, "--out", str(out), *argv]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists() and time.monotonic() - start < 15


def test_the_local_executor_never_imports_dask():
    code = ("import sys, bench.cli, bench.sweep.runner; "
            "bench.cli.build_parser().parse_args(['run']); "
            "assert not {'dask', 'distributed'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_tables_and_compare_keep_machines_apart(local_run):
    """A sweep over two machines (here: one run's rows, relabelled as a second machine)."""
    from bench.analysis.compare import by_machine, cell_samples, ratio_samples
    from bench.analysis.summary import autodiff_ratios, cell_stats
    from bench.render.report import headline_table, ratio_table

    two = local_run.assign(machine=local_run["machine"].where(local_run["part"] == 0, "Other CPU x64"))
    stats, ratios = cell_stats(two), autodiff_ratios(two)
    ok = two[two["status"] == "ok"]  # a cell whose part 0 crashed has no part 1: on one machine only
    assert len(stats) == ok.groupby(["task", "problem", "n", "backend", "derivative", "mode", "variant",
                                     "machine"]).ngroups
    assert stats["machine"].nunique() == 2 and len(stats) > len(cell_stats(local_run))
    assert "machine" in headline_table(stats) and "machine" in ratio_table(ratios).data
    assert not by_machine(local_run, local_run) and by_machine(local_run, two)
    assert len(cell_samples(two, machine=True)) == len(stats)
    assert all(" on " in label for label in ratio_samples(two, machine=True))
