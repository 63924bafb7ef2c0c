"""A/B runs (bench.api.ab, `nablabench ab`, the CI gate): each side's rows, NEW / BASE per variant
paired per pass, and a gate with no blind spot: a slower analytic formula, a slower numpy cell, a
failure after the first pass, a missing backend and an empty comparison all fail it."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis.ab import failures, verdicts, versions
from bench.cli import main
from bench.core import defaults

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = [("numpy", "analytic", "eager"), ("torch", "analytic", "eager"), ("torch", "autodiff", "backward")]


def _rows(slower: dict | None = None, *, passes: int = 6, seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    """An A/B run's rows: every variant on both sides in each pass, 3 rounds a part, the machine
    drifting between passes (the same for both sides: what the pairing takes out)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(passes):
        drift = np.exp(rng.normal(0, 0.2))  # a pass 20% faster or slower than another, on both sides
        for backend, mode, variant in VARIANTS:
            base_time = {"numpy": 1e-5, "torch": 4e-5}[backend] * (3 if mode == "autodiff" else 1)
            for side in ("base", "new"):
                factor = (slower or {}).get((backend, mode), 1.0) if side == "new" else 1.0
                for r in range(3):
                    rows.append(dict(task="eval", problem="least_squares", n=100, backend=f"{backend}@{side}",
                                     device="cpu", derivative="grad", mode=mode, variant=variant, part=p, repeat=r,
                                     status="ok", message="", instructions=np.nan,
                                     time_s=base_time * drift * factor * np.exp(rng.normal(0, noise))))
    return pd.DataFrame(rows)


def _status(found, backend, mode):
    (v,) = [v for v in found if v.backend == backend and v.mode == mode]
    return v


def test_a_quiet_ab_calls_every_variant_the_same_through_a_drifting_machine():
    found = verdicts(_rows(), factor=defaults.AB_FACTOR, alpha=defaults.ALPHA)
    assert {v.status for v in found} == {"same"} and len(found) == 3
    assert all(v.passes == 6 and v.lo < 1 < v.hi for v in found)
    assert not failures(_rows())


def test_a_slower_analytic_formula_and_a_slower_numpy_cell_fail_the_gate():
    """Both passed the stored-baseline ratio gate: an analytic time x3 reads as a faster ratio, and
    numpy has no ratio cell. Here every variant is judged by its own time."""
    found = verdicts(_rows({("torch", "analytic"): 3.0, ("numpy", "analytic"): 1.1}), factor=defaults.AB_FACTOR,
                     alpha=defaults.ALPHA)
    assert _status(found, "torch", "analytic").status == "slower"
    assert _status(found, "torch", "analytic").estimate == pytest.approx(3.0, rel=0.02)
    assert _status(found, "numpy", "analytic").status == "slower"
    assert _status(found, "torch", "autodiff").status == "same"


def test_a_failure_after_the_first_pass_a_missing_backend_and_an_empty_run_fail_the_gate():
    rows = _rows()
    late = (rows["backend"] == "torch@new") & (rows["mode"] == "autodiff") & (rows["part"] >= 1)
    crashed = rows[late].drop_duplicates(["part"]).assign(status="crashed", message="worker killed by SIGKILL")
    rows = pd.concat([rows[~late], crashed])  # timed in its first pass, then crashed
    (said,) = failures(rows)
    assert "`crashed` on the new side" in said and "backward" in said
    gone = _rows()
    gone = gone[gone["backend"] != "numpy@new"]
    (said,) = failures(gone)
    assert "not on the new side (no row of numpy there)" in said
    assert failures(_rows().iloc[:0]) == ["nothing to compare: no variant was timed on the base side"]


def test_a_version_change_between_the_sides_is_reported_as_the_subject():
    meta = {"r": {"backends": {"jax/cpu@base": {"jax": "0.10.1", "numpy": "2.4.6", "device": "cpu"},
                               "jax/cpu@new": {"jax": "0.10.2", "numpy": "2.4.6", "device": "cpu"}}}}
    assert versions(meta) == {"jax/cpu": {"jax": ("0.10.1", "0.10.2")}}


def test_bad_sides_are_refused_before_any_work(tmp_path, capsys):
    assert main(["ab", "no-such-ref", ".", "--out", str(tmp_path / "x.csv")]) == 2
    assert "neither a git ref" in capsys.readouterr().err
    assert main(["ab", ".", "python:/no/such/python", "--out", str(tmp_path / "x.csv")]) == 2
    assert "cannot run" in capsys.readouterr().err
    assert main(["ab", ".", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "without this project's tree" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def planted_tree(folder: Path, factor: int = 3) -> Path:
    """A copy of this tree whose least_squares gradient does `factor` times its work (real work: the
    same products again, summed and scaled back), nothing else changed."""
    for name in ("problems", "backends", "bench"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    source = folder / "problems" / "least_squares.py"
    text = source.read_text()
    assert "def grad(" in text
    planted = text.replace("def grad(", "def _grad_once(", 1).replace("def hess(", (
        f"def grad(x, data):\n    return sum(_grad_once(x, data) for _ in range({factor})) / {factor}\n\n\n"
        "def hess("), 1)
    source.write_text(planted)
    return folder


@pytest.mark.slow  # the slow tier: two sides' workers, real timings
def test_a_real_ab_run_catches_a_planted_slower_gradient_and_nothing_else(tmp_path):
    import bench

    tree = planted_tree(tmp_path / "planted")
    # numpy and autograd: workers that start in a fraction of a second (torch's first torch.func call
    # alone takes 2 s, in every pass and side); autograd's analytic side is the same formula in its worker
    result = bench.ab(".", str(tree), problems="least_squares,logistic", backends="numpy,autograd",
                      derivatives="grad", n="100", passes=4, out=tmp_path / "ab.csv", report=tmp_path / "page",
                      progress=False)
    assert not result.passed and not result.failures
    slower = {v.variant for v in result.slower}
    assert slower == {"eval least_squares n=100 numpy/cpu analytic grad eager",
                      "eval least_squares n=100 autograd/cpu analytic grad eager"}, str(result)
    assert all(v.estimate > 1.5 for v in result.slower)  # three times the work, less the call's overhead
    rows = pd.read_csv(tmp_path / "ab.csv")
    assert set(rows["backend"]) == {"numpy@base", "numpy@new", "autograd@base", "autograd@new"}
    assert "What changed: FAILED" in (tmp_path / "page" / "index.html").read_text()
    assert (tmp_path / "ab.ab.csv").exists()


def test_an_interpreter_with_everything_a_worker_needs_is_a_side():
    import sys

    from bench.sweep.sides import resolve

    side = resolve(f"python:{sys.executable}", "base")
    assert side.python == sys.executable and side.commit is None and Path(side.tree) == ROOT


def _threads(worker) -> int:
    return len(list(Path(f"/proc/{worker.process.pid}/task").iterdir()))


def test_a_pass_launches_its_workers_side_by_side_and_each_is_pinned_and_set_up_as_before():
    """An A/B pass launches its workers together (LocalExecutor.renew): each imports its framework
    and waits, then is pinned and set up alone when its first part starts. A JAX worker so started has
    the CPUs and threads of one started the old way, all at once, by the base commit's tree (which
    says `ready` at once: an older side still starts); numpy's too."""
    import os

    from bench.ci import base_commit
    from bench.core.cell import Cell
    from bench.sweep.executors import LocalExecutor, Settings
    from bench.sweep.sides import resolve

    older = resolve(base_commit(), "base")
    settings = Settings(backends=("jax", "numpy"), threads=1, sides=(older.setting(), ("new", older.python, str(ROOT))))
    cells = [Cell("eval", "least_squares", 8, backend, "cpu", "grad", ("analytic",), side=side)
             for backend in ("jax", "numpy") for side in ("base", "new")]
    executor = LocalExecutor()
    executor.start(settings)
    try:
        executor.renew(cells)
        workers = {(key[0], key[2]): w for key, w in executor.workers.items()}
        assert {k: w.stage for k, w in workers.items()} == {("jax", "base"): "ready", ("numpy", "base"): "ready",
                                                            ("jax", "new"): "imported", ("numpy", "new"): "imported"}
        infos = {k: w.start() for k, w in workers.items()}
        assert all(w.stage == "ready" for w in workers.values())
        pinned = [max(os.sched_getaffinity(0))] if len(os.sched_getaffinity(0)) > 1 else sorted(os.sched_getaffinity(0))
        assert all(info["cpu_affinity"] == pinned for info in infos.values())
        for backend in ("jax", "numpy"):  # the same pools, whichever way it started
            part = next(c for c in cells if c.backend == backend and c.side == "new")
            for side in ("base", "new"):
                list(workers[(backend, side)].run(dataclasses.replace(part, side=side), timeout_s=120))
            assert _threads(workers[(backend, "new")]) == _threads(workers[(backend, "base")]), backend
    finally:
        executor.renew()
    assert executor.workers == {}
