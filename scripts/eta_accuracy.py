"""How honest a run's progress display was: from its metadata's eta_trace (seconds spent, then the time
left it showed: low, likely, high; bench.sweep.runner), how often the true time left lay inside the range
from 5% of the run on, how often the range was narrow (high at most 1.5x low) from 20% on, and the likely
value against the truth.

    python scripts/eta_accuracy.py results/default-*.meta.json
    python scripts/eta_accuracy.py --replay results/default-B.csv [--history results/default-A.meta.json]
    python scripts/eta_accuracy.py --record-baseline results/default-A.meta.json results/quick-A.meta.json

`--replay` runs this tree's ETA again over a finished run's own record (its parts in the order they ended,
their seconds, their rows), with the previous run's parts as history or none: what the display would
have said, without running the sweep again. `--record-baseline` ships finished runs' parts logs as their
machine class's (baselines/eta-<fingerprint>.json, bench.sweep.eta.record_baseline: commit it): a preset's
first run on a fresh clone of that class is then priced from them, as a second run is from the first.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COVER_FROM, NARROW_FROM, NARROW = 0.05, 0.20, 1.5


def judged(trace: list[list[float]]) -> list[tuple[float, float, float, float, float]]:
    """(share of the run done, truth, low, likely, high) at each point until the last 2% of the run
    (where a few seconds either way make any ratio). Traces of one number count it as all three."""
    total = trace[-1][0]
    points = []
    for spent, *said in trace:
        low, likely, high = said if len(said) == 3 else said * 3
        if spent <= 0.98 * total:
            points.append((spent / total, total - spent, low, likely, high))
    return points


def summary(trace: list[list[float]]) -> str:
    points = judged(trace)
    covered = [low <= truth <= high for done, truth, low, _, high in points if done >= COVER_FROM]
    narrow = [high <= NARROW * low for done, _, low, _, high in points if done >= NARROW_FROM]
    lines = [f"{trace[-1][0]:.0f} s; the truth inside the range from {COVER_FROM:.0%} on at "
             f"{sum(covered) / max(len(covered), 1):.0%} of {len(covered)} points; high <= {NARROW}x low from "
             f"{NARROW_FROM:.0%} on at {sum(narrow) / max(len(narrow), 1):.0%} of {len(narrow)} points"]
    for share in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        done, truth, low, likely, high = min(points, key=lambda p: abs(p[0] - share))
        lines.append(f"  at {done:4.0%}: truth {truth:6.0f} s, shown {low:6.0f}-{high:6.0f} s "
                     f"(likely {likely / truth:.2f}x the truth, high / low {high / max(low, 1e-9):.2f})")
    return "\n".join(lines)


def replay(csv: Path, history_meta: Path | None) -> list[list[float]]:
    """The trace this tree's ETA gives over a finished run's record (see the module's docstring)."""
    from dataclasses import replace

    from bench.core.schema import BLOCKING, KEY
    from bench.sweep.eta import ETA_TRACE_S, FINISH_S, Eta, key_text
    from bench.sweep.executors import Settings
    from bench.sweep.presets import Job
    from bench.sweep.results import read_results
    from bench.sweep.runner import TIMED_FIELDS, parts, passes_taken, plan

    meta = next(iter(json.loads(csv.with_suffix(".meta.json").read_text()).values()))
    request = meta["request"]
    jobs = tuple(Job(**{k: tuple(v) if isinstance(v, list) else v for k, v in j.items()}) for j in request["jobs"])
    settings = Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in request["settings"].items()})
    cells = plan(jobs, settings)
    passes = max(c.max_passes for c in cells)
    schedule = [p for i in range(passes) for c in cells for p in parts(c) if p.part == i]
    by_name = {(key_text(p.key), p.part): p for p in schedule}
    history, finish_s = {}, FINISH_S
    if history_meta:
        then = next(iter(json.loads(history_meta.read_text()).values()))
        history = {(key, part): s for key, part, s, _ in then["parts_log"] if s is not None}
        finish_s = then["eta_trace"][-1][0] - then["parts_log"][-1][3]
    frame = read_results([csv])
    frame = frame.astype(object).where(frame.notna(), None)
    rows: dict[tuple, list[dict]] = {}
    for row in frame.to_dict("records"):
        rows.setdefault((key_text(tuple(row[k] for k in KEY)), int(row["part"] or 0)), []).append(row)
    first = meta["parts_log"][0]
    eta = Eta(schedule, meta["roofs"].get("cpu", {}).get("bandwidth_GBps"), history,
              started_s=first[3] - (first[2] or 0.0), finish_s=finish_s)  # when the first part began
    timed: dict[str, list[dict]] = {}
    trace = []
    for key, number, seconds, spent in meta["parts_log"]:
        part, its_rows = by_name[key, number], rows.get((key, number), [])
        timed.setdefault(key, []).extend({k: r[k] for k in (*KEY, *TIMED_FIELDS)} for r in its_rows
                                         if r["status"] == "ok")
        if any(r["status"] in BLOCKING for r in its_rows):
            eta.blocked(part)
        untimed = number == 0 and not timed[key]
        eta.done(part, seconds, its_rows, planned=1 if untimed else passes_taken(replace(part), timed[key]),
                 spent_s=spent)
        if not trace or spent - trace[-1][0] >= ETA_TRACE_S:  # as the run records it
            trace.append([spent, *eta.seconds_left()])
    return trace + [[meta["eta_trace"][-1][0], 0.0, 0.0, 0.0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("meta", nargs="*", type=Path, help="runs' .meta.json files: their traces as recorded")
    parser.add_argument("--replay", type=Path, help="a finished run's CSV: its trace as this tree's ETA gives it")
    parser.add_argument("--history", type=Path, help="with --replay: the previous run's .meta.json as history")
    parser.add_argument("--record-baseline", nargs="+", type=Path, metavar="META",
                        help="ship these finished runs' parts logs as their machine class's (baselines/eta-*.json)")
    args = parser.parse_args(argv)
    if args.record_baseline:
        from bench.sweep.eta import record_baseline

        print(f"parts logs -> {record_baseline(args.record_baseline)} (commit it)")
    for path in args.meta:
        for run_id, meta in json.loads(path.read_text()).items():
            trace = meta.get("eta_trace")
            print(f"{path} {run_id}: " + (summary(trace) if trace else "no eta_trace (a run before it was recorded)"))
    if args.replay:
        print(f"{args.replay} replayed, history {args.history or 'none'}: "
              + summary(replay(args.replay, args.history)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
