"""The run-to-run spread: keyed by what it depends on, measured out of sample, carried with its uncertainty."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis import spread
from bench.core.intervals import from_pass_estimates

ENTRY = dict(kind="ratio", task="eval", threads=1, backend="jax", sd=0.02, df=12.0, cells=80,
             held_out_cells=40, held_out_coverage=0.95)


def _folder(tmp_path, record):
    (tmp_path / "spread-abc.json").write_text(json.dumps(dict(record, machine="Box x2", measured="2026-12-05")))
    spread._by_machine.cache_clear()
    return tmp_path


def test_a_spread_applies_only_where_it_was_measured(tmp_path):
    folder = _folder(tmp_path, {"entries": [ENTRY]})
    assert spread.lookup("Box x2", "jax", "ratio", "eval", 1, folder) == spread.Spread(0.02, 12.0)
    assert spread.lookup("Box x2", "jax@base", "ratio", "eval", 1, folder) == spread.Spread(0.02, 12.0)
    for where in (("Box x2", "jax", "ratio", "eval", 2), ("Box x2", "jax", "ratio", "solve", 1),
                  ("Box x2", "torch", "ratio", "eval", 1), ("Box x2", "jax", "time", "eval", 1),
                  ("Other x2", "jax", "ratio", "eval", 1), ("Box x2", "jax", "ratio", "eval", None)):
        assert spread.lookup(*where, folder=folder) is None, where


def test_a_record_of_the_first_format_reads_as_one_thread_eval_known_exactly(tmp_path):
    folder = _folder(tmp_path, {"ratio": {"torch": 0.03}, "time": {"numpy": 0.07}})
    assert spread.lookup("Box x2", "torch", "ratio", "eval", 1, folder) == spread.Spread(0.03, math.inf)
    assert spread.lookup("Box x2", "numpy", "time", "eval", 1, folder).sd == 0.07
    assert spread.lookup("Box x2", "torch", "ratio", "eval", 4, folder) is None


def test_an_uncertain_spread_widens_the_interval_and_a_rerun_interval_is_wider_still():
    passes = np.log([1.00, 1.02, 0.99, 1.01])
    known = from_pass_estimates(passes, 4, run_sd=0.02)
    uncertain = from_pass_estimates(passes, 4, run_sd=0.02, run_df=5.0)
    rerun = from_pass_estimates(passes, 4, run_sd=0.02, run_df=5.0, rerun=True)
    assert known.half_width < uncertain.half_width < rerun.half_width
    exact = from_pass_estimates(np.log([1.0, 1.0]), 2, run_sd=0.02, rerun=True)  # no pass spread: z * sqrt(2) * sd
    assert math.log(exact.hi) == pytest.approx(1.959964 * math.sqrt(2) * 0.02, rel=1e-4)


def test_a_spread_calibrated_on_some_runs_holds_the_changes_of_runs_it_never_saw():
    """Synthetic runs with a known run-level spread (3%) and pass spread (1%): the spread calibrated on
    200 pairs of cells holds about 95% of 400 other pairs' changes, and its bootstrap-based degrees of
    freedom are finite."""
    from bench.reproduce import _calibrated, _held

    rng = np.random.default_rng(1)

    def pairs(count):
        return [tuple(rng.normal(0.03 * rng.standard_normal(), 0.01, size=4) for _ in range(2)) for _ in range(count)]

    sd = _calibrated(pairs(200))
    assert 0.02 < sd < 0.045, sd
    assert 0.92 <= _held(sd, pairs(400)) <= 0.98


def test_the_summary_holds_a_rerun_where_a_spread_was_measured_and_the_passes_only_elsewhere(monkeypatch):
    from bench.analysis import summary

    monkeypatch.setattr(spread, "lookup", lambda machine, backend, kind, task, threads, folder=None:
                        spread.Spread(0.02, math.inf) if backend == "jax" and threads == 1 else None)
    rows = [dict(task="eval", problem="p", n=10, backend=b, device="cpu", derivative="grad", mode="analytic",
                 variant="v", machine="m", run_id="r", part=part, repeat=part, time_s=1e-3 * (1 + 0.01 * part),
                 threads=1) for b in ("jax", "torch") for part in range(4)]
    keys = ["task", "problem", "n", "backend", "device", "derivative", "mode", "variant", "machine"]
    found = summary._intervals(pd.DataFrame(rows), keys, "time_s", "time").set_index("backend")
    assert found.loc["jax", "time_run_sd"] == 0.02 and math.isnan(found.loc["torch", "time_run_sd"])
    assert found.loc["jax", "time_hi"] / found.loc["jax", "time_lo"] > 1.1  # a rerun's: +-5.6% and more
    assert found.loc["torch", "time_hi"] / found.loc["torch", "time_lo"] < 1.05  # its passes only


def test_an_entry_that_failed_on_the_runs_held_out_is_not_applied(tmp_path):
    """Held out, 50 of 72 cells (69%) is short of 95% beyond chance: the entry stays in the file and is
    not applied; 35 of 39 (90%) is within chance of 95% and is applied."""
    failed = dict(ENTRY, backend="torch", held_out_cells=72, held_out_coverage=50 / 72)
    folder = _folder(tmp_path, {"entries": [dict(ENTRY, held_out_cells=39, held_out_coverage=35 / 39), failed]})
    assert spread.failed_held_out(failed) and not spread.failed_held_out(ENTRY)
    assert spread.lookup("Box x2", "jax", "ratio", "eval", 1, folder) is not None
    assert spread.lookup("Box x2", "torch", "ratio", "eval", 1, folder) is None
