"""The progress display's time left: a range from what is known of the work to come, learned from the
parts already done (per task and backend) and from the previous run of the same options."""
from __future__ import annotations

import pytest

from bench.core.cell import Cell
from bench.sweep.eta import (
    FINISH_S,
    SPREAD,
    Eta,
    describe_left,
    estimated_seconds,
    key_text,
    previous_run,
    record_baseline,
)


def _cell(task: str, backend: str, n: int) -> Cell:
    return Cell(task=task, problem="least_squares", n=n, backend=backend, device="cpu",
                derivative="gd" if task == "solve" else "grad", modes=("analytic", "autodiff"))


def test_eta_scales_each_task_by_what_its_own_parts_took():
    solve = [_cell("solve", "numpy", n) for n in (3000, 5000, 10000)]
    evals = [_cell("eval", "numpy", n) for n in (10000, 10000)]
    eta = Eta(solve + evals, finish_s=0)
    prior = sum(map(estimated_seconds, solve + evals))
    low, likely, high = eta.seconds_left()
    assert likely == pytest.approx(prior)
    # nothing learned yet: the model unscaled, as far off as it may be either way
    assert (low, high) == pytest.approx((prior / SPREAD["model-prior"], prior * SPREAD["model-prior"]))
    assert min(map(estimated_seconds, solve[:2] + evals[:1])) > 1.0  # enough to learn from (Eta trusts > 1 s)
    eta.done(solve[0], 3 * estimated_seconds(solve[0]))  # the solve ran 3x slower than its model
    eta.done(solve[1], 3 * estimated_seconds(solve[1]))
    left_solve, left_eval = estimated_seconds(solve[2]), sum(map(estimated_seconds, evals))
    # the solve's remaining part is scaled by 3, the eval parts (another model) are not
    assert eta.seconds_left()[1] == pytest.approx(3 * left_solve + left_eval)
    eta.done(evals[0], 0.5 * estimated_seconds(evals[0]))
    assert eta.seconds_left()[1] == pytest.approx(3 * left_solve + 0.5 * estimated_seconds(evals[1]))
    eta.done(solve[2], None)  # skipped: nothing learned, nothing left
    assert eta.seconds_left()[1] == pytest.approx(0.5 * estimated_seconds(evals[1]))


def test_a_cells_later_parts_are_priced_from_its_first_parts_samples():
    from dataclasses import replace

    cell = replace(_cell("eval", "torch", 100), rounds=2, passes=2, max_passes=2)
    first, second = (replace(cell, part=p) for p in (0, 1))
    eta = Eta([first, second], finish_s=0)
    rows = [{"status": "ok", "mode": m, "variant": v, "time_s": t, "inner_loops": 10}
            for m, v, t in (("analytic", "eager", 1e-3), ("autodiff", "backward", 3e-3)) for _ in range(2)]
    eta.done(first, 0.08, rows)  # its samples' seconds and nothing else (no overhead to pay again)
    # one round: 10 ms + 30 ms; the second part takes its 2 rounds and a re-warm of about one round
    assert eta.seconds_left() == pytest.approx((3 * 0.04 / SPREAD["measured"], 3 * 0.04, 3 * 0.04 * SPREAD["measured"]))


def test_a_later_part_pays_again_the_share_of_its_first_parts_overhead_that_later_parts_paid():
    """A first part's seconds beyond what it timed (the instance built, checks, compiles) grow with the
    cell; a later part builds the instance again: it pays the share of that overhead that the later
    parts of its task paid so far."""
    from dataclasses import replace

    cells = [replace(_cell("eval", "torch", n), rounds=2, passes=2, max_passes=2) for n in (100, 101, 102)]
    eta = Eta([replace(c, part=p) for c in cells for p in (0, 1)], finish_s=0)
    rows = [{"status": "ok", "mode": "analytic", "variant": "eager", "time_s": 1e-3, "inner_loops": 10}]
    for c, overhead in zip(cells, (2.0, 4.0, 8.0)):
        eta.done(replace(c, part=0), 0.01 + overhead, rows)  # one round of 10 ms, timed; the rest overhead
    # each later part: 3 rounds of 10 ms (its 2 and a re-warm), and half its first part's overhead (the prior)
    assert eta.seconds_left()[1] == pytest.approx(3 * 0.03 + 0.5 * (2 + 4 + 8))
    eta.done(replace(cells[0], part=1), 0.01 + 1.5, rows)  # it paid 1.5 s of its first part's 2 s again
    assert eta.seconds_left()[1] == pytest.approx(2 * 0.03 + 0.75 * (4 + 8))


def test_an_unseen_cells_optional_parts_count_as_the_share_of_planned_cells_that_take_them():
    from dataclasses import replace

    cells = [replace(_cell("eval", "numpy", n), passes=1, max_passes=2) for n in range(10, 30)]
    parts = [replace(c, part=p) for c in cells for p in (0, 1)]
    eta = Eta(parts, finish_s=0)
    optional = [p for p in parts if p.part == 1]
    full = sum(map(estimated_seconds, optional))
    floor = sum(map(estimated_seconds, [p for p in parts if p.part == 0]))
    low, likely, high = eta.seconds_left()
    spread = SPREAD["model-prior"]
    # before any cell has planned: none of the optional parts, a half, or all of them
    assert (low, likely, high) == pytest.approx((floor / spread, floor + 0.5 * full, (floor + full) * spread))
    for cell in cells[:10]:  # ten cells plan: two of them take their optional pass
        eta.done(replace(cell, part=0), None, planned=2 if cell.n < 12 else 1)
    share_low, share, share_high = eta.shares("eval", 1)
    assert share == pytest.approx(2.5 / 11) and 0 < share_low < 0.2 < share_high < 0.6  # Jeffreys' 90%
    left_floor = sum(estimated_seconds(p) for p in parts if p.part == 0 and p.n >= 20)
    # the planned cells' optional parts: the two that run; the unseen cells' at the share's high end
    assert eta.seconds_left()[2] == pytest.approx(
        (left_floor + sum(estimated_seconds(p) for p in optional[10:]) * share_high
         + sum(map(estimated_seconds, optional[:2]))) * spread)
    # an optional part of a cell too costly for one by the model (the stopping rule's budget) counts nothing
    costly = replace(_cell("eval", "numpy", 10000), passes=1, max_passes=2)
    assert estimated_seconds(replace(costly, part=1)) > 0.25
    assert Eta([replace(costly, part=1)], finish_s=0).seconds_left() == (0, 0, 0)


def test_a_failure_decides_its_familys_larger_sizes():
    from dataclasses import replace

    cells = [replace(_cell("eval", "numpy", n), passes=2, max_passes=2) for n in (100, 1000, 10000)]
    eta = Eta([replace(c, part=p) for c in cells for p in (0, 1)], finish_s=0)
    eta.done(replace(cells[0], part=0), None, planned=1)
    eta.blocked(cells[0])  # it timed out: the larger sizes are skipped, not run
    assert eta.seconds_left() == (0, 0, 0)


def test_a_later_part_is_priced_at_what_its_cells_last_later_part_took():
    from dataclasses import replace

    cell = replace(_cell("eval", "torch", 100), rounds=2, passes=2, max_passes=4)
    parts = [replace(cell, part=p) for p in range(4)]
    eta = Eta(parts, finish_s=0)
    rows = [{"status": "ok", "mode": "analytic", "variant": "eager", "time_s": 1e-3, "inner_loops": 10}]
    eta.done(parts[0], 0.5, rows, planned=4)  # its first pass plans four passes
    eta.done(parts[1], 0.08, rows, planned=4)  # its second part took 80 ms
    # the two parts to come: 80 ms each
    assert eta.seconds_left()[1] == pytest.approx(2 * 0.08)
    eta.done(parts[2], 0.08, rows, planned=3)  # the budget (or the plan) ends it a pass early
    assert eta.seconds_left() == (0, 0, 0)


def test_the_stopping_rule_prices_a_further_pass_by_the_parts_after_the_first():
    """The first part pays once for checks, compiles and a fresh worker's import of its framework. A
    part's price is its rows' timed seconds (time per call x calls), so that a resumed run prices
    as the run it resumes did."""
    from dataclasses import replace

    from bench.sweep.runner import settled

    cell = replace(_cell("eval", "torch", 16), passes=2, max_passes=6, target=0.03)

    def rows(loops_by_part):
        return [{"backend": "torch", "mode": mode, "variant": variant, "part": part, "repeat": 2 * part + r,
                 "run_id": "a", "inner_loops": loops, "time_s": scale * (1 + 0.01 * r)}
                for part, loops in enumerate(loops_by_part) for r in (0, 1)
                for mode, variant, scale in (("analytic", "eager", 1e-5), ("autodiff", "backward", 3e-5))]

    third = replace(cell, part=2)
    assert not settled(third, rows([10, 10]))  # cheap: its planned passes (more than two) go on
    assert not settled(third, rows([10**5, 10]))  # a costly first part does not make it costly
    assert settled(third, rows([10**5, 10**4]))  # its later parts do: 0.8 s each
    assert settled(third, rows([10**4]))  # no later part yet: the first is all there is


def test_a_previous_run_of_the_same_options_prices_each_part_at_this_runs_speed(tmp_path):
    import json
    from dataclasses import replace

    cells = [replace(_cell("eval", "numpy", n), passes=2, max_passes=2) for n in (10, 100, 1000)]
    parts = [replace(c, part=p) for c in cells for p in (0, 1)]
    request, machine = {"preset": "quick", "jobs": [], "settings": {"seed": 0}}, "abc"
    then = [[key_text(p.key), p.part, 1.0 + p.part, 10.0] for p in parts]  # 1 s a first part, 2 s a second
    runs = {"old": dict(request=request, machine_fingerprint=machine, finished="2026-01-01", parts_log=then,
                        eta_trace=[[0.0, 1.0, 1.0, 1.0], [12.5, 0.0, 0.0, 0.0]]),
            "other": dict(request=dict(request, preset="default"), machine_fingerprint=machine,
                          finished="2026-02-01", parts_log=[[k, p, 99.0, 0] for k, p, _, _ in then],
                          eta_trace=[[0, 0]]),
            "elsewhere": dict(request=request, machine_fingerprint="xyz", finished="2026-03-01",
                              parts_log=[[k, p, 99.0, 0] for k, p, _, _ in then], eta_trace=[[0, 0]])}
    (tmp_path / "earlier.meta.json").write_text(json.dumps(runs))
    history, finish_s, source = previous_run(tmp_path / "new.csv", request, machine, folder=tmp_path / "none")
    assert history == {(key_text(p.key), p.part): 1.0 + p.part for p in parts}  # only the run like this one
    assert finish_s == pytest.approx(2.5)  # what it took after its last part
    assert source == str(tmp_path / "earlier.meta.json")
    assert previous_run(tmp_path / "new.csv", dict(request, preset="x"), machine, folder=tmp_path / "none") == \
        ({}, FINISH_S, "")

    # a first run beside no run of its own: the machine class's shipped parts log, where it holds these options
    shipped = tmp_path / "baselines"
    with pytest.raises(ValueError, match="two machine classes"):
        record_baseline([tmp_path / "earlier.meta.json"], folder=shipped)
    (tmp_path / "ours.meta.json").write_text(json.dumps({k: v for k, v in runs.items() if k != "elsewhere"}))
    path = record_baseline([tmp_path / "ours.meta.json"], folder=shipped)
    assert path == shipped / "eta-abc.json"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert previous_run(fresh / "new.csv", request, machine, folder=shipped) == (history, pytest.approx(2.5), str(path))
    assert previous_run(fresh / "new.csv", dict(request, preset="x"), machine, folder=shipped) == ({}, FINISH_S, "")
    assert previous_run(fresh / "new.csv", request, "xyz", folder=shipped)[2] == ""  # another class's file: none
    # the run's own folder wins over the shipped log
    own = previous_run(tmp_path / "new.csv", request, machine, folder=shipped)[2]
    assert own in (str(tmp_path / "earlier.meta.json"), str(tmp_path / "ours.meta.json"))

    eta = Eta(parts, history=history, finish_s=0)
    assert eta.seconds_left()[1] == pytest.approx(9.0)
    for p in parts[:3]:  # this run goes at half the speed of the previous one
        eta.done(p, 2 * history[key_text(p.key), p.part], planned=2)
    left = 2 * sum(history[key_text(p.key), p.part] for p in parts[3:])
    spread = SPREAD["history"]
    assert eta.seconds_left() == pytest.approx((left / spread, left, left * spread))


def test_the_time_left_reads_as_a_range_or_one_number_where_it_is_narrow():
    assert describe_left(8 * 60 + 20, 13 * 60 + 40) == "8-14 min left"
    assert describe_left(600, 660) == "about 10 min left"
    assert describe_left(40, 70) == "40-70 s left"
    assert describe_left(40, 45) == "about 45 s left"


def test_a_counted_cells_rows_plan_no_pass_beyond_its_one():
    """A counted run's rows hold instructions, not seconds: its cells take their one pass."""
    from dataclasses import replace

    from bench.sweep.runner import passes_taken

    cell = replace(_cell("eval", "numpy", 100), passes=1, max_passes=1)
    rows = [{"part": 0, "time_s": None, "inner_loops": 20, "mode": "analytic", "variant": "eager", "repeat": r,
             "backend": "numpy", "run_id": "a", "instructions": 37000.0} for r in range(5)]
    assert passes_taken(cell, rows) == 1
    assert passes_taken(replace(cell, max_passes=3), rows) == 1  # no seconds: nothing to plan more from


def test_the_sweeps_own_seconds_between_parts_and_after_the_last_are_counted():
    """What the sweep spends outside its parts (rows written, the next part decided; its workers
    stopped at the end) is time left too: between parts at its median rate lately (a worker's start
    does not move it), after them as the previous run took (FINISH_S before any)."""
    from dataclasses import replace

    cells = [replace(_cell("eval", "numpy", n), passes=1, max_passes=1) for n in range(10, 50)]
    eta = Eta(cells, started_s=5.0, finish_s=2.0)
    clock = 5.0
    for i, c in enumerate(cells[:20]):
        clock += 0.1 + 0.02 + (1.5 if i == 3 else 0.0)  # 20 ms besides each part; a worker started once
        eta.done(c, 0.1, spent_s=clock)
    parts_left = sum(estimated_seconds(c) * eta._scale(eta.price[c.key, c.side, c.part][0])[0] for c in cells[20:])
    assert eta.seconds_left()[1] == pytest.approx(parts_left + 20 * 0.02 + 2.0)


def test_a_parts_log_recorded_before_the_dtype_axis_names_the_cells_as_they_are_keyed_now(tmp_path):
    import json

    from bench.sweep.eta import BASELINES, key_text
    from bench.sweep.executors import Settings
    from bench.sweep.presets import PRESETS
    from bench.sweep.runner import plan

    runs = json.loads((BASELINES / "eta-c40528833b.json").read_text())["runs"]
    run = next(r for r in runs if r["request"]["preset"] == "default")
    history, _, source = previous_run(tmp_path / "none" / "x.csv", run["request"], "c40528833b")
    assert source.endswith("eta-c40528833b.json")
    cells = plan(PRESETS["default"], Settings(backends=tuple(run["request"]["settings"]["backends"])))
    logged, planned = {key for key, _ in history}, {key_text(cell.key) for cell in cells}
    assert logged == planned  # every cell of the preset priced by its own logged parts, float64 in its key
