"""The sweep: plan cells, guard memory, dispatch to workers (here, or on a cluster through an
executor), write rows. Never raises per cell."""
from __future__ import annotations

import itertools
import signal
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import backends
import problems

from bench.core import defaults, environment, precision
from bench.core.cell import Cell, base_row
from bench.core.load import snapshot as load_snapshot
from bench.core.schema import BLOCKING, KEY, family
from bench.measure.counting import COUNT_BUDGET_FACTOR, COUNT_SAMPLES
from bench.measure.roofline import measure_like_a_worker
from bench.measure.solvers import SOLVERS, measured_kind
from bench.sweep.eta import ETA_TRACE_S, Eta, describe_left, key_text, previous_run
from bench.sweep.executors import Executor, LocalExecutor, Outcome, Settings
from bench.sweep.presets import Job
from bench.sweep.results import (
    SCHEMA_VERSION,
    CsvSink,
    metadata_path,
    read_results,
    set_aside_partial_row,
    write_metadata,
)


def plan(jobs: tuple[Job, ...], settings: Settings) -> list[Cell]:
    """Cells in run order: per job, problem and size, the backends interleaved (drift spreads)."""
    cells, planned = [], set()  # planned: the cell keys (bench.core.schema.KEY) so far
    for job in jobs:
        known = SOLVERS if job.task == "solve" else problems.KINDS
        unknown = [d for d in job.derivatives if d not in known]
        if unknown:
            raise ValueError(f"Unknown {'solver' if job.task == 'solve' else 'derivative kind'} `{unknown[0]}` in a "
                             f"{job.task} job; expected one of: {', '.join(known)}.")
        for problem in job.problems:
            defined = problems.get(problem).derivatives
            for n in job.sizes:
                # eval cells for the derivative kinds the problem defines; a solver wherever the kind it
                # times is defined (it skips, with the reason, where f* is unknown)
                for derivative in [d for d in job.derivatives if measured_kind(job.task, d) in defined]:
                    kind = measured_kind(job.task, derivative)
                    for device, dtype in itertools.product(settings.devices, settings.dtypes):
                        for name in settings.backends:
                            b = backends.get(name)
                            # autodiff where the backend implements the kind; the analytic formulas always
                            modes = tuple(m for m in settings.modes
                                          if m in b.modes and (m == "analytic" or kind in b.kinds))
                            if not modes or (device == "cuda" and name not in settings.cuda_backends):
                                continue
                            key = (job.task, problem, n, name, device, dtype, derivative)
                            if key in planned:
                                continue  # two jobs made alike by an override (--problems, --n): run it once
                            planned.add(key)
                            counted = settings.measure != "time"  # one pass: a count does not drift
                            cells.append(Cell(
                                task=job.task, problem=problem, source=problems.source(problem), n=n,
                                backend=name, device=device, dtype=dtype, accuracy=settings.dtypes != precision.DEFAULT,
                                derivative=derivative, modes=modes, seed=settings.seed,
                                rounds=COUNT_SAMPLES if counted else job.rounds if job.task == "eval" else job.repeats,
                                passes=1 if counted else job.passes, max_passes=1 if counted else job.max_passes,
                                target=settings.target, measure=settings.measure,
                                max_rounds=(max(settings.max_rounds, job.rounds) if job.task == "eval"
                                            else settings.max_rounds),
                                min_sample_s=settings.min_sample_s, repeats=job.repeats,
                                eps=precision.solve_eps(settings.eps, dtype), rtol=settings.rtol,
                                time_budget_s=settings.solve_budget_s if job.task == "solve"
                                else settings.eval_budget_s * (COUNT_BUDGET_FACTOR if counted else 1)))
    return cells


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def lane(part: Cell) -> tuple:
    """What runs one part at a time: a cell's family, on its side of an A/B run (the two sides' workers
    are apart, so a counted A/B run counts base and new at once)."""
    return (*family(part), part.side)


def run_sweep(cells: list[Cell], settings: Settings, out: Path, *, resume: bool,
              progress: bool = True, log=print, executor: Executor | None = None, request: dict | None = None,
              fresh_workers_each_pass: bool = False) -> dict:
    """Run every cell in parts, one per pass over the sweep; returns a summary. Rows reach `out` as
    each part of a cell ends, so an interrupted run loses at most the parts in flight.

    A cell takes its floor of passes (`Cell.passes`), then more, up to `Cell.max_passes`, as many as
    its first pass's spread plans for an interval within its target (`settled`). The parts of one
    family (a cell over its sizes) run one at a time, in order, wherever they run: a timeout, crash
    or memory skip at one size decides the larger ones, as it does here. `request`: the options that shaped the run
    (bench.options.run_record), kept in its metadata for a resume to match. `fresh_workers_each_pass`
    (an A/B run, bench.api.ab): every pass in new worker processes (LocalExecutor.renew), so that what
    a process draws (its memory layout, which of its calls paid a one-time cost) varies from pass to
    pass and lands in the interval, instead of biasing one side for the whole run.
    """
    run_id = uuid.uuid4().hex[:12]
    if resume and out.exists():  # rows appended to a partial last row would corrupt both
        cut = set_aside_partial_row(out)
        if cut:
            print(f"nablabench: note: {cut}; resuming from the last whole row", file=sys.stderr)
    executor = executor or LocalExecutor()
    done, blocked, untimed, timed = _earlier_run(out) if resume else (set(), {}, set(), {})
    passes = max((cell.max_passes for cell in cells), default=0)
    schedule = [part for p in range(passes) for cell in cells for part in parts(cell)
                if part.part == p and (*part.key, p) not in done]
    if any(cell.side for cell in cells):
        schedule = _sides_shuffled(schedule, settings.seed)
    meta = environment.collect(settings.threads)
    meta.update(run_id=run_id, started=_now(), settings=settings.__dict__, request=request, cells_planned=len(cells),
                parts_planned=len(schedule), parts_resumed=len(done), schema_version=SCHEMA_VERSION,
                executor=executor.description, backends={}, drift={}, warnings=[], load_start=load_snapshot(),
                interleaving="passes over the sweep; a cell takes its floor of passes, then more (up to its most), as "
                f"many as its first pass's spread plans for intervals within +-{settings.target:.0%}; within a "
                "part, rounds of its "
                "variants in a fresh random order each, seeded by (seed, crc32 of the cell key, first round); "
                "`part` and `position` record it")
    meta["roofs"] = {}  # measured below, before any part runs
    if not resume:  # a new run replaces the CSV and its metadata
        metadata_path(out).unlink(missing_ok=True)
    sink = CsvSink(out, append=resume)
    write_metadata(out, run_id, meta)
    statuses: Counter = Counter()
    ran = Counter()  # pass -> parts that ran in it
    seconds: Counter = Counter()  # "task pass p" -> seconds its parts took
    bar = _progress_bar(progress)
    eta = Eta([])  # priced below, once the roofs are measured
    eta_trace: list[tuple] = []  # (seconds spent, seconds left as the display said: low, likely, high)
    parts_log: list[list] = []  # [cell key text, part, seconds or None (decided), seconds spent]: in record order
    sweep_started = time.monotonic()
    shown = {"at": -1.0, "left": "", "stage": ""}  # when the time left was last priced, what the bar says

    def show(force: bool = False) -> None:
        spent = time.monotonic() - sweep_started
        if not force and spent - shown["at"] < 0.5:
            bar.update(spent - bar.n)
            return
        low, likely, high = (s / executor.width for s in eta.seconds_left())
        shown.update(at=spent, left=describe_left(low, high))
        bar.total = spent + likely
        bar.update(spent - bar.n)
        bar.set_postfix_str(f"{shown['left']} · {shown['stage']}", refresh=False)
        if not eta_trace or spent - eta_trace[-1][0] >= ETA_TRACE_S:
            eta_trace.append((round(spent, 1), round(low, 1), round(likely, 1), round(high, 1)))

    def record(part: Cell, outcome: Outcome) -> None:
        if part.part == 0 and not any(r["status"] == "ok" for r in outcome.rows):  # later parts would repeat it
            untimed.add(part.key)
        if outcome.blocks:
            blocked[family(part)] = (part.n, outcome.blocks)
            eta.blocked(part)
        _note(meta, outcome)
        stamp = _now()
        rows = [dict(r, schema_version=SCHEMA_VERSION, run_id=run_id, timestamp=stamp,
                     host_workers=outcome.host_workers if r.get("host") else None) for r in outcome.rows]
        if part.side:  # an A/B run: each side's rows under its own backend name (bench.ab)
            rows = [dict(r, backend=f"{r['backend']}@{part.side}") for r in rows]
        if rows:
            sink.write(rows)
        timed.setdefault(part.key, []).extend(_timed_fields(r) for r in rows if r["status"] == "ok")
        statuses.update(r["status"] for r in rows)
        ran[part.part] += outcome.seconds is not None
        if outcome.seconds is not None:
            seconds[f"{part.task} pass {part.part + 1}"] += outcome.seconds
        planned = 1 if part.key in untimed else passes_taken(part, timed.get(part.key, []))
        eta.done(part, outcome.seconds, rows, planned=planned, spent_s=time.monotonic() - sweep_started)
        show()
        parts_log.append([key_text(part.key) + (f"@{part.side}" if part.side else ""), part.part,
                          None if outcome.seconds is None else round(outcome.seconds, 3),
                          round(time.monotonic() - sweep_started, 2)])

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    pending, running = list(schedule), {}  # running: lane -> its part in flight
    try:
        if schedule:  # the machine's roofs on each device (bench.measure.roofline): this host's, on a cluster too
            meta["roofs"] = {device: dict(measure_like_a_worker(device, settings.threads),
                                          machine=environment.here()["machine"]) for device in settings.devices}
            write_metadata(out, run_id, meta)
        history, finish_s, meta["eta_history_from"] = previous_run(out, request, meta.get("machine_fingerprint"))
        meta["eta_history_parts"] = len(history)
        eta = Eta(schedule, meta["roofs"].get("cpu", {}).get("bandwidth_GBps"), history,
                  started_s=time.monotonic() - sweep_started, finish_s=finish_s)
        show(force=True)
        executor.start(settings)
        this_pass = 0
        if fresh_workers_each_pass:
            executor.renew([q for q in pending if q.part == this_pass])
        while pending or running:
            busy = set(running)
            for part in list(pending):
                if not executor.has_room():
                    break
                if fresh_workers_each_pass and part.part > this_pass:
                    if running or any(q.part == this_pass for q in pending):
                        break  # the pass ends first
                    this_pass = part.part
                    executor.renew([q for q in pending if q.part == this_pass])
                if lane(part) in busy:  # an earlier part of its family (on its side) has not ended
                    continue
                if part.part >= part.passes and settled(part, timed.get(part.key, [])):
                    pending.remove(part)
                    record(part, Outcome(rows=[]))
                    continue
                rows = _decided(part, untimed, blocked)
                if rows is not None:
                    pending.remove(part)
                    record(part, Outcome(rows=rows))
                    continue
                busy.add(lane(part))
                if executor.offer(part):
                    pending.remove(part)
                    running[lane(part)] = part
                    shown["stage"] = f"{_stage(part, eta)}: {part.task} {part.problem} n={part.n} " \
                                     f"{part.backend} {part.derivative}"
                    bar.set_postfix_str(f"{shown['left']} · {shown['stage']}")
            if running:
                part, outcome = executor.next_done()
                del running[lane(part)]
                record(part, outcome)
    except KeyboardInterrupt:
        interrupted = True  # the parts in flight are dropped whole; --resume runs them again
    finally:
        # a second Ctrl-C or SIGTERM while the workers stop and the metadata is written waits for them
        previous_sigint = signal.signal(signal.SIGINT, _finishing)
        signal.signal(signal.SIGTERM, _finishing)
        bar.close()
        for name, final in executor.finish().items():
            if final is not None:
                meta["drift"].setdefault(name, {})["end"] = final
        sink.close()
        meta.update(finished=_now(), interrupted=interrupted, statuses=dict(statuses), load_end=load_snapshot(),
                    parts_run_per_pass=dict(sorted(ran.items())),
                    seconds_per_pass={k: round(v, 1) for k, v in sorted(seconds.items())},
                    eta_trace=eta_trace + [(round(time.monotonic() - sweep_started, 1), 0.0, 0.0, 0.0)],
                    parts_log=parts_log)
        write_metadata(out, run_id, meta)
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGTERM, previous_sigterm)
    return {"run_id": run_id, "interrupted": interrupted, "statuses": dict(statuses),
            "parts_run": sum(ran.values()), "parts_resumed": len(done)}


def _sides_shuffled(schedule: list[Cell], seed: int) -> list[Cell]:
    """An A/B run's schedule: the sides' parts of one cell and pass next to each other (one cell's
    parts of a pass are adjacent in the plan), each side first in as many passes as the other: the
    order rotates from pass to pass, from a starting side drawn per cell (seeded). The part that runs
    first in a pass was measured faster by several percent (numpy's gradient at n = 100: 0.93x with
    the new side first in 9 of 10 passes), so an unbalanced order would read as a change."""
    out: list[Cell] = []
    for (key, p), group in itertools.groupby(schedule, key=lambda part: (part.key, part.part)):
        group = list(group)
        start = (zlib.crc32(repr((seed, key)).encode()) + p) % len(group)
        out.extend(group[start:] + group[:start])
    return out


def _finishing(signum, frame) -> None:
    print("nablabench: stopping the workers and closing the CSV; a moment", file=sys.stderr)


TIMED_FIELDS = ("mode", "variant", "part", "repeat", "time_s", "inner_loops", "run_id", "machine")


def _timed_fields(row: dict) -> dict:
    return {k: row.get(k) for k in (*KEY, *TIMED_FIELDS)}


def settled(part: Cell, timed: list[dict]) -> bool:
    """Whether a cell has taken the passes it needs (`passes_taken`)."""
    return part.part >= passes_taken(part, timed)


def passes_taken(part: Cell, timed: list[dict]) -> int:
    """The passes a cell takes, as its timed rows so far say: those planned from its first pass's
    spread (bench.core.stopping: the values of its interval play no part), or its floor where its
    parts are too costly for another (their timed seconds more than defaults.CHEAP_S each on average:
    the budget of an optional pass). A part is priced by the cell's parts after its first, where any
    ran: the first pays once for checks, compiles and, in a fresh worker, the framework's import,
    which another part does not repeat. Both read the rows alone, so that a resumed run decides as
    the run it resumes did, and resuming a finished run adds nothing."""
    from bench.core.pairing import pilot_spread
    from bench.core.stopping import planned_passes

    timed = [row for row in timed if row.get("time_s") is not None]  # a counted run's rows hold counts
    if not timed or part.max_passes <= part.passes:
        return part.passes  # nothing timed, or no pass beyond the floor: nothing another pass could tighten
    seconds: dict[int, float] = {}
    for row in timed:
        seconds[int(row["part"] or 0)] = seconds.get(int(row["part"] or 0), 0.0) + row["time_s"] * (
            row.get("inner_loops") or 1)
    repeated = [s for p, s in seconds.items() if p > 0] or list(seconds.values())
    if sum(repeated) / len(repeated) > defaults.CHEAP_S:
        return part.passes
    return max(part.passes, planned_passes(pilot_spread(timed), part.passes, part.max_passes, part.target))


def _stage(part: Cell, eta: Eta) -> str:
    """What the sweep is doing, as the progress bar says it."""
    if part.part == 0:
        return "first pass"
    if part.part < part.passes:
        return f"pass {part.part + 1} (every cell's floor)"
    return f"pass {part.part + 1} (extra passes for {eta.cells_taking(part.part)} cells)"


def _decided(part: Cell, untimed: set, blocked: dict) -> list[dict] | None:
    """The rows of a part that needs no machine (none where it adds nothing); None: run it."""
    if part.part > 0 and _settled(part, untimed, blocked):
        return []
    if family(part) in blocked and part.n > blocked[family(part)][0]:
        return [base_row(part, mode="", variant="", status="skipped", message=blocked[family(part)][1])]
    kind = measured_kind(part.task, part.derivative)
    limit = problems.get(part.problem).size_limits.get(kind)
    if limit is not None and part.n > limit:
        return [base_row(part, mode="", variant="", status="skipped",
                         message=f"{part.problem} declares {kind} only up to n={limit}")]
    return None


def _note(meta: dict, outcome: Outcome) -> None:
    """What an outcome tells the metadata: warnings, its worker's setup and drift, its machine."""
    for warning in outcome.warnings:
        if warning not in meta["warnings"]:
            meta["warnings"].append(warning)
            print(f"nablabench: warning: {warning}", file=sys.stderr)
    if outcome.info is not None:
        info = dict(outcome.info)
        meta["drift"].setdefault(outcome.worker, {}).setdefault("start", info.pop("drift_start", None))
        meta["backends"].setdefault(outcome.worker, info)
    if outcome.environment is not None:
        meta.setdefault("machines", {})[outcome.environment["host"]] = outcome.environment
    stamped = [r for r in outcome.rows if "ref_numpy_s" in r]
    if stamped:  # the drift monitor's times before this part, in its worker's series
        series = meta["drift"].setdefault(outcome.worker, {}).setdefault("cells", [])
        series.append([stamped[0]["ref_numpy_s"], stamped[0]["ref_python_s"]])


def parts(cell: Cell) -> list[Cell]:
    """A cell's parts, one per pass, up to its most passes: part p runs in pass p, so that a cell's
    samples span the whole run and a slow spell of the machine lands on a share of them, not on all
    (asv's rounds, pyperf's several processes in time). Parts past the cell's floor of passes run
    only where the cell is not yet `settled`.

    An eval part takes the cell's rounds (at least; the worker may take more). A solve cell's floor
    of runs (`repeats`) is shared among its first passes, and each later part takes one run (the
    worker takes more where runs are cheap). Rounds are numbered from p * max_rounds: unique in a cell."""
    chosen = []
    if cell.task == "eval":
        for p in range(cell.max_passes):
            chosen.append(replace(cell, part=p, first_round=p * cell.max_rounds,
                                  time_budget_s=cell.time_budget_s / cell.passes))
        return chosen
    floor = min(cell.passes, cell.repeats)
    share = -(-cell.repeats // floor)
    width = max(cell.max_rounds, share)  # a part may take its share, whatever the most it takes otherwise
    for p in range(max(cell.max_passes, floor)):
        runs = min(share, cell.repeats - p * share) if p < floor else 1
        if runs <= 0:
            continue
        chosen.append(replace(cell, part=p, first_round=p * width, rounds=runs, max_rounds=width, passes=floor,
                              time_budget_s=cell.time_budget_s * runs / cell.repeats))
    return chosen


def _settled(part: Cell, untimed: set, blocked: dict) -> bool:
    """A later part has nothing to add where the first timed nothing (every variant wrong,
    skipped, failed) or the cell's family was blocked at this size or below: its rows say why."""
    return part.key in untimed or (family(part) in blocked and part.n >= blocked[family(part)][0])


def _earlier_run(out: Path) -> tuple[set[tuple], dict[tuple, tuple[int, str]], set[tuple], dict[tuple, list]]:
    """What an earlier (interrupted) run of `out` did: the (cell key, part) it finished, the
    families it blocked, the cells whose first part timed nothing, and each cell's timed samples."""
    if not out.exists() or out.stat().st_size == 0:
        return set(), {}, set(), {}
    frame = read_results([out])
    frame["part"] = frame["part"].fillna(0).astype(int)
    done = {tuple(r) for r in frame[list(KEY) + ["part"]].itertuples(index=False, name=None)}
    blocked = {}
    for row in frame[frame["status"].isin(BLOCKING)].sort_values("n").itertuples():
        blocked.setdefault(family(row), (row.n, f"skipped after n={row.n} ended `{row.status}`"))
    first = frame[frame["part"] == 0]
    timed_keys = {tuple(r) for r in first[first["status"] == "ok"][list(KEY)].itertuples(index=False, name=None)}
    untimed = {tuple(r) for r in first[list(KEY)].itertuples(index=False, name=None)} - timed_keys
    ok = frame[frame["status"] == "ok"].astype(object).where(frame.notna(), None)
    timed: dict[tuple, list] = {}
    for row in ok[list(KEY) + list(TIMED_FIELDS)].to_dict("records"):
        timed.setdefault(tuple(row[k] for k in KEY), []).append(row)
    return done, blocked, untimed, timed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress_bar(enabled: bool):
    """A tqdm bar in seconds: `n` is the time spent, `total` the time spent plus `Eta`'s likely time
    left; its postfix says the time left as a range (bench.sweep.eta.describe_left) and the stage."""
    from tqdm.auto import tqdm  # in Jupyter (with ipywidgets) the notebook's bar, else the terminal's

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(total=1.0, disable=not enabled, unit="s", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if interactive else 15.0,
                bar_format="{l_bar}{bar}| {elapsed} spent{postfix}", smoothing=0)
