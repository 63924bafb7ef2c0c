"""The regression comparator on synthetic samples: detection, false alarms, missing cells."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.compare import (CompareInputError, compare, load_samples, minimum_samples, ratio_samples,
                           cell_samples)


def draws(rng, median, count, noise=0.07):
    # timing noise: log-normal spread (IQR/median ~ 10%, the report's "warn" line) plus 5% of
    # slow outliers, as on a shared machine
    x = median * rng.lognormal(0.0, noise, count)
    x[rng.random(count) < 0.05] *= 1.5
    return x


def rates(slowdown: float, *, seeds: int = 300, count: int = 10, status: str = "slower") -> float:
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base = {"cell": draws(rng, 1e-3, count)}
        new = {"cell": draws(rng, 1e-3 * slowdown, count)}
        hits += compare(base, new, factor=1.2)[0].status == status
    return hits / seeds


def test_detects_a_30_percent_slowdown():
    # noise with IQR/median ~ 10% and 5% outliers: 10 rounds catch it mostly, 20 nearly always
    assert rates(1.3, count=10) >= 0.85 and rates(1.3, count=20) >= 0.99


def test_false_alarm_rate_on_one_distribution_is_below_alpha():
    assert rates(1.0, seeds=1000) <= 0.005


def test_same_only_where_the_samples_could_have_seen_the_factor():
    # 20 samples a side show that no 20% change happened; 5 noisy ones cannot, and say so.
    assert rates(1.0, count=20, status="same") >= 0.95
    rng = np.random.default_rng(3)
    (v,) = compare({"c": draws(rng, 1.0, 5, 0.3)}, {"c": draws(rng, 1.0, 5, 0.3)}, factor=1.2)
    assert v.status == "inconclusive" and v.samples_needed > 5


def test_a_change_below_the_factor_is_same_with_enough_samples():
    rng = np.random.default_rng(0)
    base, new = {"c": draws(rng, 1.0, 200, 0.01)}, {"c": draws(rng, 1.05, 200, 0.01)}
    (verdict,) = compare(base, new, factor=1.2)
    assert verdict.p_slower < 1e-6 and verdict.status == "same"


def test_faster_and_missing_cells():
    rng = np.random.default_rng(1)
    base = {"faster": draws(rng, 1.0, 10), "gone": draws(rng, 1.0, 10)}
    new = {"faster": draws(rng, 0.5, 10), "added": draws(rng, 1.0, 10)}
    verdicts = {v.cell: v for v in compare(base, new)}
    assert verdicts["faster"].status == "faster"
    assert verdicts["gone"].status == "only in base" and verdicts["gone"].new_samples == 0
    assert verdicts["added"].status == "only in new" and np.isnan(verdicts["added"].ratio)


def test_five_samples_a_side_are_the_fewest_that_can_decide():
    assert minimum_samples(0.005) == 5 and minimum_samples(0.002) == 6
    rng = np.random.default_rng(2)
    (v,) = compare({"c": draws(rng, 1.0, 4)}, {"c": draws(rng, 10.0, 4)})
    assert v.status == "inconclusive"  # 10x slower, but 4 samples a side cannot reach p < 0.005
    (v,) = compare({"c": draws(rng, 1.0, 5, 0.01)}, {"c": draws(rng, 10.0, 5, 0.01)})
    assert v.status == "slower"


def test_reads_pytest_benchmark_json_and_builds_within_run_ratios(tmp_path):
    def bench(mode, variant, data):
        return {"name": f"t[{mode}]", "fullname": f"t[{mode}]", "stats": {"data": data},
                "extra_info": {"task": "eval", "problem": "least_squares", "n": 100, "backend": "torch",
                               "device": "cpu", "mode": mode, "derivative": "grad", "variant": variant}}

    path = tmp_path / "b.json"
    path.write_text(json.dumps({"benchmarks": [bench("analytic", "eager", [1.0, 1.0, 1.0]),
                                               bench("autodiff", "backward", [2.0, 3.0, 4.0])]}))
    frame = load_samples(path)
    assert len(cell_samples(frame)) == 2
    (ratios,) = ratio_samples(frame).values()
    assert list(ratios) == [2.0, 3.0, 4.0]  # sample i over sample i

    path.write_text(json.dumps({"benchmarks": [{"name": "x", "stats": {"mean": 1.0}}]}))
    with pytest.raises(CompareInputError, match="--benchmark-save-data"):
        load_samples(path)
    path.write_text("[1, 2]")
    with pytest.raises(CompareInputError, match="not a pytest-benchmark JSON"):
        load_samples(path)


def _csv_run(tmp_path, name, *, slowdown=1.0, seed=0, machine="vm"):
    """A small results CSV with 20 interleaved rounds a cell and its metadata, by the real sink."""
    from bench.results import CsvSink, write_metadata

    rng = np.random.default_rng(seed)
    path = tmp_path / f"{name}.csv"
    sink = CsvSink(path, append=False)
    rows = []
    for i in range(20):
        drift = rng.lognormal(0.0, 0.05)  # the machine's speed this round: both sides share it
        for mode, variant, median in (("analytic", "eager", 1e-4), ("autodiff", "backward", 3e-4)):
            scale = slowdown if mode == "autodiff" else 1.0
            rows.append(dict(schema_version=2, run_id=name, timestamp="t", task="eval", problem="least_squares",
                             n=100, backend="torch", device="cpu", dtype="float64", mode=mode, derivative="grad",
                             variant=variant, repeat=i, position=int(mode == "autodiff"),
                             time_s=draws(rng, median * scale * drift, 1, 0.02)[0], inner_loops=10,
                             ref_numpy_s=1e-3 * drift, ref_python_s=1e-3 * drift, status="ok", message=""))
    sink.write(rows)
    sink.close()
    write_metadata(path, name, {"git_commit": str(seed) * 40, "started": f"2026-11-2{seed}T00:00:00",
                                "cpu_model": machine, "cpu_count": 2, "threads": 2})
    return path


def test_compare_command_gates_on_within_run_ratios(tmp_path, capsys):
    from bench.cli import main

    base = _csv_run(tmp_path, "base", seed=1, machine="A")
    same = _csv_run(tmp_path, "same", seed=2, machine="B")
    slow = _csv_run(tmp_path, "slow", slowdown=1.5, seed=3, machine="B")
    assert main(["compare", str(base), str(same)]) == 0
    assert main(["compare", str(base), str(slow)]) == 1
    out = capsys.readouterr().out
    assert "gate: ratios (setup fingerprints" in out and "different or unknown setups" in out
    assert "slower" in out and "backward / eager" in out
    assert main(["compare", str(base), str(slow), "--gate", "none"]) == 0
    assert main(["compare", str(base), str(tmp_path / "missing.csv")]) == 2
    assert main(["compare", str(base), str(same), "--factor", "1"]) == 2


def test_absolute_times_gate_only_on_the_same_setup(tmp_path, capsys):
    from bench.cli import main

    # The whole machine 40% slower: ratios do not move, absolute times do.
    base = _csv_run(tmp_path, "base", seed=1)
    slow = _csv_run(tmp_path, "slow", seed=2)
    frame = pd.read_csv(slow)
    frame["time_s"] *= 1.4
    frame.to_csv(slow, index=False)
    assert main(["compare", str(base), str(slow)]) == 1  # same setup fingerprint: absolute times gate
    assert "gate: ratios and absolute" in capsys.readouterr().out
    assert main(["compare", str(base), str(slow), "--gate", "ratios"]) == 0
    assert main(["compare", str(base), str(slow), "--normalise"]) == 1
    out = capsys.readouterr().out
    assert "normalised by the drift monitor" in out


def test_history_page_and_action_benchmark_json(tmp_path):
    from bench.cli import main

    runs = [_csv_run(tmp_path, f"run{i}", seed=i, slowdown=1 + 0.1 * i) for i in range(3)]
    assert main(["history", *map(str, reversed(runs)), "--out", str(tmp_path / "hist")]) == 0
    html = (tmp_path / "hist" / "index.html").read_text()
    assert "history_least_squares_grad.png" in html and (tmp_path / "hist" / "history_least_squares_grad.png").exists()
    entries = json.loads((tmp_path / "hist" / "benchmark-data.json").read_text())
    assert {e["unit"] for e in entries} == {"s"} and len(entries) == 2
    newest = [e for e in entries if "autodiff" in e["name"]][0]
    assert newest["extra"] == "commit " + "2" * 10  # the newest run's commit (seed 2), shortened
    assert newest["value"] == pytest.approx(3e-4 * 1.2, rel=0.1)


def test_the_ci_gate_fails_only_on_cells_a_second_run_confirms(tmp_path, monkeypatch):
    """bench.ci reruns the preset once after a regression and fails only on the cells slower in both."""
    import bench.ci as ci

    base = _csv_run(tmp_path, "base", seed=1, machine="A")
    runs = {"first": _csv_run(tmp_path, "first", slowdown=1.5, seed=2, machine="A")}

    def fake_cli(argv):  # the preset run is replaced by a prepared CSV; compare runs for real
        from bench.cli import main

        if argv[0] == "run":
            out = Path(argv[argv.index("--out") + 1])
            shutil.copyfile(runs["second"], out)
            shutil.copyfile(runs["second"].with_suffix(".meta.json"), out.with_suffix(".meta.json"))
            return 0
        return main(argv)

    monkeypatch.setattr(ci, "cli", fake_cli)
    runs["second"] = _csv_run(tmp_path, "steady", seed=3, machine="A")  # a busy spell: not confirmed
    assert ci._confirmed(base, runs["first"], 1.3) == 0
    runs["second"] = _csv_run(tmp_path, "again", slowdown=1.5, seed=4, machine="A")  # a real regression
    assert ci._confirmed(base, runs["first"], 1.3) == 1
    assert ci._slower(base, runs["first"], 1.3) == {"eval least_squares n=100 torch/cpu grad backward / eager"}
