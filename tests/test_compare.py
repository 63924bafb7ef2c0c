"""The regression comparator: verdicts from pass-level intervals on synthetic samples with the
structure measured here (a pass effect larger than the round noise), false discoveries controlled
across cells, and the structural failures a gate must not pass (missing, failed, absent)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bench.analysis.compare import (
    CompareInputError,
    Samples,
    cell_samples,
    compare,
    gate_failures,
    load_samples,
    ratio_samples,
)


def draws(rng, median, passes=4, rounds=3, between=0.02, within=0.03, outliers=0.05):
    """Samples as this machine gives them (bench.core.intervals): each pass shifts its rounds by a
    log-normal pass effect (SD `between`), each round adds its own noise (SD `within`), and a
    share `outliers` of rounds are 1.5x slow."""
    effects = rng.normal(0.0, between, passes)
    values, parts = [], []
    for p, effect in enumerate(effects):
        x = median * np.exp(effect + rng.normal(0.0, within, rounds))
        x[rng.random(rounds) < outliers] *= 1.5
        values.extend(x)
        parts.extend([p] * rounds)
    return Samples(np.array(values), np.array(parts))


def rates(slowdown: float, *, seeds: int = 300, status: str = "slower", **shape) -> float:
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base = {"cell": draws(rng, 1e-3, **shape)}
        new = {"cell": draws(rng, 1e-3 * slowdown, **shape)}
        hits += compare(base, new, factor=1.2)[0].status == status
    return hits / seeds


def test_detects_a_30_percent_slowdown_from_four_passes():
    assert rates(1.3) >= 0.9 and rates(1.3, passes=6) >= 0.97


def test_no_change_is_rarely_called_a_change():
    assert rates(1.0, seeds=1000) + rates(1.0, seeds=1000, status="faster") <= 0.01


def test_same_only_where_the_passes_could_have_seen_the_factor():
    # six passes a side show that no 20% change happened (but where two of a pass's three rounds are
    # outliers: its median moves by half, and so does the spread over passes); two noisy ones cannot
    assert rates(1.0, passes=6, status="same") >= 0.9
    rng = np.random.default_rng(3)
    noisy = dict(passes=2, between=0.15, within=0.2)
    (v,) = compare({"c": draws(rng, 1.0, **noisy)}, {"c": draws(rng, 1.0, **noisy)}, factor=1.2)
    assert v.status == "inconclusive" and v.passes_needed > 2


def test_a_change_below_the_factor_is_same_with_enough_passes():
    rng = np.random.default_rng(0)
    quiet = dict(passes=8, between=0.005, within=0.01, outliers=0.0)
    (verdict,) = compare({"c": draws(rng, 1.0, **quiet)}, {"c": draws(rng, 1.05, **quiet)}, factor=1.2)
    assert verdict.p_value < 1e-4 and verdict.status == "same" and 1.0 < verdict.lo < verdict.hi < 1.2


def test_a_run_compared_with_itself_is_same_everywhere():
    rng = np.random.default_rng(4)
    run = {f"cell {i}": draws(rng, 1.0, passes=2, between=0.3) for i in range(20)}  # noisy: no interval is tight
    verdicts = compare(run, run)
    assert {v.status for v in verdicts} == {"same"} and all(v.lo == v.hi == 1.0 for v in verdicts)


def test_one_pass_gives_no_interval_and_no_verdict():
    rng = np.random.default_rng(5)
    (v,) = compare({"c": draws(rng, 1.0, passes=1, rounds=10)}, {"c": draws(rng, 2.0, passes=1, rounds=10)})
    assert v.status == "inconclusive" and np.isnan(v.lo)


def test_false_discoveries_are_controlled_across_cells():
    """36 cells (the ci preset's count), one of them 1.3x slower: Benjamini-Hochberg keeps the real
    one and lets through almost none of the 35 unchanged cells, where a test per cell at 5%
    would call about 1.75 of them changed."""
    found, false = 0, 0
    for seed in range(100):
        rng = np.random.default_rng(100 + seed)
        base = {f"c{i}": draws(rng, 1.0) for i in range(36)}
        new = {f"c{i}": draws(rng, 1.3 if i == 0 else 1.0) for i in range(36)}
        verdicts = {v.cell: v for v in compare(base, new, factor=1.1)}
        found += verdicts["c0"].status == "slower"
        false += sum(v.status in ("slower", "faster") for c, v in verdicts.items() if c != "c0")
    assert found >= 85 and false <= 10


def test_faster_and_missing_cells():
    rng = np.random.default_rng(1)
    base = {"faster": draws(rng, 1.0), "gone": draws(rng, 1.0)}
    new = {"faster": draws(rng, 0.5), "added": draws(rng, 1.0)}
    verdicts = {v.cell: v for v in compare(base, new)}
    assert verdicts["faster"].status == "faster" and verdicts["faster"].hi < 1
    assert verdicts["gone"].status == "only in base" and verdicts["gone"].new_passes == 0
    assert verdicts["added"].status == "only in new" and np.isnan(verdicts["added"].ratio)


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
    assert list(ratios.values) == [2.0, 3.0, 4.0]  # sample i over sample i
    assert list(ratios.parts) == [0, 1, 2]  # one block: each sample taken as its own pass

    path.write_text(json.dumps({"benchmarks": [{"name": "x", "stats": {"mean": 1.0}}]}))
    with pytest.raises(CompareInputError, match="--benchmark-save-data"):
        load_samples(path)
    path.write_text("[1, 2]")
    with pytest.raises(CompareInputError, match="not a pytest-benchmark JSON"):
        load_samples(path)


def _csv_run(tmp_path, name, *, slowdown=1.0, seed=0, machine="vm", drop=(), status=None):
    """A small results CSV by the real sink: per backend, a cell of 4 passes x 5 interleaved rounds
    and its metadata. `drop`: backends left out; `status`: (backend, status) of its autodiff rows."""
    from bench.sweep.results import CsvSink, write_metadata

    rng = np.random.default_rng(seed)
    path = tmp_path / f"{name}.csv"
    sink = CsvSink(path, append=False)
    rows = []
    for backend in ("torch", "jax"):
        if backend in drop:
            continue
        for part in range(4):
            regime = rng.lognormal(0.0, 0.05)  # the machine's speed in this pass: both sides share most of it
            for r in range(5):
                drift = regime * rng.lognormal(0.0, 0.02)
                for mode, variant, median in (("analytic", "eager", 1e-4), ("autodiff", "backward", 3e-4)):
                    scale = slowdown if mode == "autodiff" and backend == "torch" else 1.0
                    row = dict(schema_version=3, run_id=name, timestamp="t", task="eval", problem="least_squares",
                               n=100, backend=backend, device="cpu", dtype="float64", mode=mode, derivative="grad",
                               variant=variant, repeat=part * 10 + r, position=int(mode == "autodiff"), part=part,
                               time_s=median * scale * drift * rng.lognormal(0.0, 0.01), inner_loops=10,
                               ref_numpy_s=1e-3 * drift, ref_python_s=1e-3 * drift, status="ok", message="")
                    if status and status[0] == backend and mode == "autodiff":
                        row.update(status=status[1], time_s=None, message="relative error 3.1e-02 > rtol 1e-08")
                    rows.append(row)
    sink.write(rows)
    sink.close()
    write_metadata(path, name, {"git_commit": str(seed) * 40, "started": f"2026-11-2{seed}T00:00:00",
                                "cpu_model": machine, "cpu_count": 2, "threads": 2})
    return path


def test_the_gate_fails_on_a_missing_backend_a_wrong_cell_and_a_missing_cell(tmp_path, capsys):
    """Before intervals, `compare` exited 0 with every torch cell missing ("only in base") and with
    a cell turned `wrong`: a gate that passed a broken run."""
    from bench.cli import main

    base = _csv_run(tmp_path, "base", seed=1)
    assert main(["compare", str(base), str(_csv_run(tmp_path, "fine", seed=2))]) == 0
    capsys.readouterr()
    no_torch = _csv_run(tmp_path, "no-torch", seed=3, drop=("torch",))
    assert main(["compare", str(base), str(no_torch)]) == 1
    assert "backend `torch` is absent from no-torch.csv" in capsys.readouterr().out
    wrong = _csv_run(tmp_path, "wrong", seed=4, status=("jax", "wrong"))
    assert main(["compare", str(base), str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "jax/cpu autodiff grad backward: `ok` in the baseline, now `wrong` (relative error 3.1e-02" in out
    missing = tmp_path / "missing-rows.csv"
    frame = pd.read_csv(_csv_run(tmp_path, "partial", seed=5))
    frame[~((frame["backend"] == "jax") & (frame["mode"] == "autodiff"))].to_csv(missing, index=False)
    shutil.copyfile(tmp_path / "partial.meta.json", missing.with_suffix(".meta.json"))
    assert gate_failures(base, missing) == [
        "eval least_squares n=100 jax/cpu autodiff grad backward: `ok` in the baseline, missing from missing-rows.csv"]
    assert main(["compare", str(base), str(missing), "--gate", "none"]) == 0  # nothing gates: advisory


def test_compare_command_gates_on_within_run_ratios(tmp_path, capsys):
    from bench.cli import main

    base = _csv_run(tmp_path, "base", seed=1, machine="A")
    same = _csv_run(tmp_path, "same", seed=2, machine="B")
    slow = _csv_run(tmp_path, "slow", slowdown=1.5, seed=3, machine="B")
    assert main(["compare", str(base), str(same)]) == 0
    assert main(["compare", str(base), str(slow)]) == 1
    out = capsys.readouterr().out
    assert "gate: ratios (setup fingerprints" in out and "different or unknown setups" in out
    assert "slower" in out and "backward / eager" in out and "95% intervals of NEW / BASE" in out
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
    assert "history_eval_least_squares_grad.png" in html
    assert (tmp_path / "hist" / "history_eval_least_squares_grad.png").exists()
    entries = json.loads((tmp_path / "hist" / "benchmark-data.json").read_text())
    assert {e["unit"] for e in entries} == {"s"} and len(entries) == 4  # two variants of two backends
    newest = [e for e in entries if "torch/cpu autodiff" in e["name"]][0]
    assert newest["extra"] == "commit " + "2" * 10  # the newest run's commit (seed 2), shortened
    assert newest["value"] == pytest.approx(3e-4 * 1.2, rel=0.1)


def test_float32_and_float64_cells_stay_apart_and_are_named(tmp_path):
    """A run of both dtypes: each dtype's samples and ratios its own, float32's label says so."""
    def bench(mode, variant, dtype, data):
        return {"name": f"t[{mode}-{dtype}]", "fullname": f"t[{mode}-{dtype}]", "stats": {"data": data},
                "extra_info": {"task": "eval", "problem": "least_squares", "n": 100, "backend": "torch",
                               "device": "cpu", "dtype": dtype, "mode": mode, "derivative": "grad",
                               "variant": variant}}

    path = tmp_path / "b.json"
    analytic = [bench("analytic", "eager", d, [1.0, 1.0]) for d in ("float64", "float32")]
    autodiff = [bench("autodiff", "backward", d, [v, v]) for d, v in (("float64", 2.0), ("float32", 5.0))]
    path.write_text(json.dumps({"benchmarks": analytic + autodiff}))
    frame = load_samples(path)
    assert sorted(cell_samples(frame)) == ["eval least_squares n=100 torch/cpu analytic grad eager",
                                           "eval least_squares n=100 torch/cpu autodiff grad backward",
                                           "eval least_squares n=100 torch/cpu float32 analytic grad eager",
                                           "eval least_squares n=100 torch/cpu float32 autodiff grad backward"]
    ratios = {label: list(s.values) for label, s in ratio_samples(frame).items()}
    assert ratios == {"eval least_squares n=100 torch/cpu grad backward / eager": [2.0, 2.0],
                      "eval least_squares n=100 torch/cpu float32 grad backward / eager": [5.0, 5.0]}
