"""The sweep: plan cells, guard memory, dispatch to workers (here, or on a cluster through an
executor), write rows. Never raises per cell."""
from __future__ import annotations

import math
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import psutil

import backends
import problems

from . import defaults, environment
from .cells import KEY, Cell, base_row
from .load import LoadMonitor
from .load import snapshot as load_snapshot
from .presets import Job
from .results import SCHEMA_VERSION, CsvSink, metadata_path, read_results, write_metadata
from .workers import CellTimeout, Worker, WorkerCrashed

# Skip all larger sizes of the same cell after one of these.
BLOCKING_STATUSES = ("timeout", "crashed", "skipped_memory")


@dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    modes: tuple[str, ...] = ("analytic", "autodiff")
    eps: float = defaults.EPS
    seed: int = defaults.SEED
    threads: int = 1
    eval_budget_s: float = defaults.EVAL_BUDGET_S
    solve_budget_s: float = defaults.SOLVE_BUDGET_S
    memory_fraction: float = defaults.MEMORY_FRACTION
    rtol: float = defaults.RTOL
    min_sample_s: float = defaults.SAMPLE_TIME_S
    passes: int = defaults.PASSES
    cuda_backends: tuple[str, ...] = ()  # the selected backends that see a CUDA GPU here


def plan(jobs: tuple[Job, ...], settings: Settings) -> list[Cell]:
    """Cells in run order: per job, problem and size, the backends interleaved (drift spreads)."""
    cells = []
    for job in jobs:
        unknown = [d for d in job.derivatives if d not in problems.KINDS and not (job.task == "solve" and d == "gd")]
        if unknown:
            raise ValueError(f"Unknown derivative kind `{unknown[0]}` in a {job.task} job; expected one of: "
                             f"{', '.join(problems.KINDS) if job.task == 'eval' else 'gd'}.")
        for problem in job.problems:
            defined = problems.get(problem).derivatives
            for n in job.sizes:
                # solve's "gd" runs wherever a gradient exists (it skips, with the reason, where f* is
                # unknown); eval cells only for the derivative kinds the problem defines
                for derivative in [d for d in job.derivatives if d in defined or (d == "gd" and "grad" in defined)]:
                    for device in settings.devices:
                        for name in settings.backends:
                            b = backends.get(name)
                            # autodiff where the backend implements the kind; the analytic formulas always
                            modes = tuple(m for m in settings.modes if m in b.modes and (
                                m == "analytic" or derivative == "gd" or derivative in b.kinds))
                            if not modes or (device == "cuda" and name not in settings.cuda_backends):
                                continue
                            cells.append(Cell(
                                task=job.task, problem=problem, source=problems.source(problem), n=n,
                                backend=name, device=device,
                                derivative=derivative, modes=modes, seed=settings.seed,
                                samples=job.samples, min_sample_s=settings.min_sample_s,
                                repeats=job.repeats, eps=settings.eps, rtol=settings.rtol,
                                time_budget_s=settings.solve_budget_s if job.task == "solve"
                                else settings.eval_budget_s))
    return cells


def estimated_bytes(cell: Cell) -> int:
    """Peak bytes a cell may need in its worker, before it allocates anything: the instance's data
    as many times as the backend holds it (its record's data_copies), and what the derivative kind
    holds beyond the data (problems.Kind.working_bytes). Solve cells hold about what a gradient does."""
    p = problems.get(cell.problem)
    working = problems.KINDS.get(cell.derivative, problems.KINDS["grad"]).working_bytes
    return p.data_bytes(cell.n) * backends.get(cell.backend).data_copies + working(cell.n, p.dim(cell.n))


def estimated_seconds(cell: Cell) -> float:
    """A rough cost model of one part of a cell (the ETA's prior; `Eta` corrects it as parts finish).

    Two variants, each paying a fixed cost (warm-up, calibration, first call, compile) and its
    rounds; calls priced as memory-bound matvecs at ~20 GB/s plus ~20 us of dispatch.
    """
    matvec = 8 * cell.n * cell.n / 2e10
    if cell.task == "solve":
        warm_up = 1 if cell.part == 0 else 0
        return 2 * (cell.repeats + warm_up) * 40 * (2 * matvec + 5e-5) + 0.3
    per_call = {"f": matvec, "hess": 2 * cell.n * 2 * matvec}.get(cell.derivative, 2 * matvec) + 2e-5
    return 2 * (0.15 + cell.samples * max(cell.min_sample_s, per_call) + 3 * per_call)


class Eta:
    """Seconds left in a sweep: the cost model's estimate of what remains, scaled by how long the
    parts of each (task, backend) took so far against what the model said they would."""

    def __init__(self, parts: list[Cell]):
        self.left: Counter = Counter()
        for part in parts:
            self.left[self._group(part)] += estimated_seconds(part)
        self.actual: Counter = Counter()
        self.estimated: Counter = Counter()

    @staticmethod
    def _group(part: Cell) -> tuple:
        return part.task, part.backend, part.device

    def done(self, part: Cell, seconds: float | None) -> None:
        """A part finished in `seconds`, or was skipped (None: nothing to learn from it)."""
        group, estimate = self._group(part), estimated_seconds(part)
        self.left[group] -= estimate
        if seconds is not None:
            self.actual[group] += seconds
            self.estimated[group] += estimate

    def _scale(self, group: tuple) -> float:
        """actual / estimated for this group; else for its task (solve and eval are priced by
        different models, so one does not scale the other); else the model as it is."""
        if self.estimated[group] > 1.0:
            return self.actual[group] / self.estimated[group]
        same_task = [g for g in self.estimated if g[0] == group[0]]
        estimated = sum(self.estimated[g] for g in same_task)
        return sum(self.actual[g] for g in same_task) / estimated if estimated > 1.0 else 1.0

    def seconds_left(self) -> float:
        return sum(max(left, 0.0) * self._scale(g) for g, left in self.left.items())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Outcome:
    """What one part of a cell gave: its rows, and what the parent records of the machine that ran it."""

    rows: list[dict]
    seconds: float | None = None  # the part's wall time on its machine; None: decided without running it
    blocks: str = ""  # why the larger sizes of its family are skipped; "" if they are not
    worker: str = ""  # the worker process that ran it: backend/device, and @ the Dask worker on a cluster
    info: dict | None = None  # that worker's setup facts (metadata "backends"), its first drift times included
    warnings: tuple[str, ...] = ()
    environment: dict | None = None  # a Dask worker's machine (bench.environment.collect), once per worker
    host_workers: int = 1  # workers that ran parts on its host at the time (1 here; Dask workers may share one)


class Executor(Protocol):
    """Where parts run. The parent plans, decides what needs no machine, and writes every row."""

    description: str
    width: int  # parts it runs at once (the ETA divides by it)

    def start(self, settings: Settings) -> None: ...

    def has_room(self) -> bool:
        """Whether a part could start now (a machine is free)."""

    def offer(self, part: Cell) -> bool:
        """Start `part` if a machine it may run on is free; False leaves it for later."""

    def next_done(self) -> tuple[Cell, Outcome]:
        """Wait for a started part to end."""

    def finish(self) -> dict:
        """Stop every worker process; their last drift-monitor times, by worker name."""


@dataclass
class LocalExecutor:
    """Parts run here, one at a time, each in its backend's worker process (kept for the sweep)."""

    description: str = "local"
    width: int = 1
    settings: Settings | None = None
    workers: dict = field(default_factory=dict)
    queue: list = field(default_factory=list)

    def start(self, settings: Settings) -> None:
        self.settings = settings

    def has_room(self) -> bool:
        return not self.queue

    def offer(self, part: Cell) -> bool:
        self.queue.append(part)
        return True

    def next_done(self) -> tuple[Cell, Outcome]:
        part = self.queue.pop(0)
        return part, run_part(part, self.settings, self.workers)

    def finish(self) -> dict:
        return {_worker_name(w.backend, w.device): w.stop() for w in self.workers.values()}


def run_sweep(cells: list[Cell], settings: Settings, out: Path, *, resume: bool,
              progress: bool = True, log=print, executor: Executor | None = None) -> dict:
    """Run every cell in `settings.passes` passes; returns a summary. Rows reach `out` as each
    part of a cell ends, so an interrupted run loses at most the parts in flight.

    The parts of one family (a cell over its sizes) run one at a time, in order, wherever they
    run: a timeout, crash or memory skip at one size decides the larger ones, as it does here.
    """
    run_id = uuid.uuid4().hex[:12]
    executor = executor or LocalExecutor()
    done, blocked, untimed = _earlier_run(out) if resume else (set(), {}, set())
    schedule = [part for p in range(settings.passes) for cell in cells for part in parts(cell, settings.passes)
                if part.part == p and (*part.key, p) not in done]
    meta = environment.collect(settings.threads)
    meta.update(run_id=run_id, started=_now(), settings=settings.__dict__, cells_planned=len(cells),
                parts_planned=len(schedule), parts_resumed=len(done), schema_version=SCHEMA_VERSION,
                executor=executor.description, backends={}, drift={}, warnings=[], load_start=load_snapshot(),
                interleaving=f"{settings.passes} passes over the sweep, each taking its share of every cell's rounds "
                "(eval) or repeats (solve); within a part, variants in a fresh random order per round, seeded by "
                "(seed, crc32 of the cell key, first round); `part` and `position` record it")
    if not resume:  # a new run replaces the CSV and its metadata
        metadata_path(out).unlink(missing_ok=True)
    sink = CsvSink(out, append=resume)
    write_metadata(out, run_id, meta)
    statuses: Counter = Counter()
    bar = _progress_bar(progress)
    eta = Eta(schedule)
    sweep_started = time.monotonic()

    def record(part: Cell, outcome: Outcome) -> None:
        if part.part == 0 and not any(r["status"] == "ok" for r in outcome.rows):  # later parts would repeat it
            untimed.add(part.key)
        if outcome.blocks:
            blocked[family(part)] = (part.n, outcome.blocks)
        _note(meta, outcome)
        stamp = _now()
        rows = [dict(r, schema_version=SCHEMA_VERSION, run_id=run_id, timestamp=stamp,
                     host_workers=outcome.host_workers if r.get("host") else None) for r in outcome.rows]
        if rows:
            sink.write(rows)
        statuses.update(r["status"] for r in rows)
        eta.done(part, outcome.seconds)
        spent = time.monotonic() - sweep_started
        bar.total = spent + eta.seconds_left() / executor.width
        bar.update(spent - bar.n)

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    pending, running = list(schedule), {}  # running: family -> its part in flight
    try:
        executor.start(settings)
        while pending or running:
            busy = set(running)
            for part in list(pending):
                if not executor.has_room():
                    break
                if family(part) in busy:  # an earlier part of its family has not ended
                    continue
                rows = _decided(part, untimed, blocked)
                if rows is not None:
                    pending.remove(part)
                    record(part, Outcome(rows=rows))
                    continue
                busy.add(family(part))
                if executor.offer(part):
                    pending.remove(part)
                    running[family(part)] = part
                    bar.set_postfix_str(f"pass {part.part + 1}/{settings.passes} {part.task} {part.problem} "
                                        f"n={part.n} {part.backend} {part.derivative}")
            if running:
                part, outcome = executor.next_done()
                del running[family(part)]
                record(part, outcome)
    except KeyboardInterrupt:
        interrupted = True  # the parts in flight are dropped whole; --resume runs them again
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        for name, final in executor.finish().items():
            if final is not None:
                meta["drift"].setdefault(name, {})["end"] = final
        sink.close()
        meta.update(finished=_now(), interrupted=interrupted, statuses=dict(statuses), load_end=load_snapshot())
        write_metadata(out, run_id, meta)
    return {"run_id": run_id, "interrupted": interrupted, "statuses": dict(statuses),
            "parts_run": len(schedule), "parts_resumed": len(done)}


def family(cell) -> tuple:
    """The cell over its sizes (a Cell or a results row): what a failure at one size blocks."""
    return cell.task, cell.problem, cell.backend, cell.device, cell.derivative


def _decided(part: Cell, untimed: set, blocked: dict) -> list[dict] | None:
    """The rows of a part that needs no machine (none where it adds nothing); None: run it."""
    if part.part > 0 and _settled(part, untimed, blocked):
        return []
    if family(part) in blocked and part.n > blocked[family(part)][0]:
        return [base_row(part, mode="", variant="", status="skipped", message=blocked[family(part)][1])]
    limit = problems.get(part.problem).size_limits.get(part.derivative)
    if limit is not None and part.n > limit:
        return [base_row(part, mode="", variant="", status="skipped",
                         message=f"{part.problem} declares {part.derivative} only up to n={limit}")]
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


def parts(cell: Cell, passes: int) -> list[Cell]:
    """A cell's rounds (eval) or repeats (solve) shared among the sweep's passes: part p runs in
    pass p, so a cell's samples span the whole run and a slow spell of the machine lands on a share
    of them, not on all (asv's rounds, pyperf's several processes in time)."""
    count = cell.samples if cell.task == "eval" else cell.repeats
    share = -(-count // passes)
    chosen = []
    for p in range(passes):
        size = min(share, count - p * share)
        if size <= 0:
            break
        changed = {"samples": size} if cell.task == "eval" else {"repeats": size}
        chosen.append(replace(cell, part=p, first_round=p * share, time_budget_s=cell.time_budget_s * size / count,
                              **changed))
    return chosen


def _settled(part: Cell, untimed: set, blocked: dict) -> bool:
    """A later part has nothing to add where the first timed nothing (every variant wrong,
    skipped, failed) or the cell's family was blocked at this size or below: its rows say why."""
    return part.key in untimed or (family(part) in blocked and part.n >= blocked[family(part)][0])


def _earlier_run(out: Path) -> tuple[set[tuple], dict[tuple, tuple[int, str]], set[tuple]]:
    """What an earlier (interrupted) run of `out` did: the (cell key, part) it finished, the
    families it blocked, and the cells whose first part timed nothing."""
    if not out.exists() or out.stat().st_size == 0:
        return set(), {}, set()
    frame = read_results([out])
    frame["part"] = frame["part"].fillna(0).astype(int)
    done = {tuple(r) for r in frame[list(KEY) + ["part"]].itertuples(index=False, name=None)}
    blocked = {}
    for row in frame[frame["status"].isin(BLOCKING_STATUSES)].sort_values("n").itertuples():
        blocked.setdefault(family(row), (row.n, f"skipped after n={row.n} ended `{row.status}`"))
    first = frame[frame["part"] == 0]
    timed = {tuple(r) for r in first[first["status"] == "ok"][list(KEY)].itertuples(index=False, name=None)}
    untimed = {tuple(r) for r in first[list(KEY)].itertuples(index=False, name=None)} - timed
    return done, blocked, untimed


def _worker_name(backend: str, device: str) -> str:
    return f"{backend}/{device}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress_bar(enabled: bool):
    """A tqdm bar in seconds: `n` is the time spent, `total` the time spent plus `Eta`'s estimate
    of what is left, so tqdm's own remaining time is the learned ETA."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=1.0, disable=not enabled, unit="s", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if interactive else 15.0,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", smoothing=0)


def run_part(part: Cell, settings: Settings, workers: dict, *, slot: int = 0) -> Outcome:
    """One part of a cell on this machine, in its backend's worker process (started on first use and
    kept in `workers`, on CPU slice `slot`): the memory guard, the load while it ran, a timeout or crash
    as a row. The local executor calls it here; bench.cluster calls it on a Dask worker."""
    started = time.monotonic()
    monitor = LoadMonitor()
    load_started = monitor.start()
    outcome = _run_one(part, settings, workers, slot)
    load, here = monitor.stop(load_started), environment.here()
    return replace(outcome, rows=[dict(r, **load, **here) for r in outcome.rows], seconds=time.monotonic() - started)


def failed(cell: Cell, status: str, message: str, rows=()) -> Outcome:
    """A part that ended `timeout` or `crashed`: the rows it finished, one that says why, and the
    larger sizes of its family blocked."""
    return Outcome(rows=[*rows, base_row(cell, mode="", variant="", status=status, message=message)],
                   blocks=f"skipped after n={cell.n} ended `{status}`")


def _run_one(cell: Cell, settings: Settings, workers: dict, slot: int) -> Outcome:
    need = estimated_bytes(cell)
    free, problem = available_bytes(cell.device)
    warnings = (problem,) if problem else ()
    have = free * settings.memory_fraction
    if need > have:
        message = f"needs ~{need / 2**30:.1f} GiB, budget {have / 2**30:.1f} GiB"
        return Outcome(rows=[base_row(cell, mode="", variant="", status="skipped_memory", message=message)],
                       blocks=f"skipped after n={cell.n}: {message}", warnings=warnings)
    key = (cell.backend, cell.device)
    worker = workers.get(key)
    if worker is None:
        worker = workers[key] = Worker(cell.backend, cell.device, settings.threads, slot=slot)
    name, info = _worker_name(cell.backend, cell.device), None
    rows: list[dict] = []
    try:
        info = worker.start()
        for batch in worker.run(cell, timeout_s=_hard_limit(cell.time_budget_s)):
            rows.extend(batch)
        return Outcome(rows=rows, worker=name, info=info, warnings=warnings)
    except (CellTimeout, WorkerCrashed) as exc:
        status = "timeout" if isinstance(exc, CellTimeout) else "crashed"
        finished = sorted({r["mode"] + "/" + r["variant"] for r in rows})
        message = f"{exc}" + (f"; finished before: {', '.join(finished)}" if finished else "")
        return replace(failed(cell, status, message, rows), worker=name, info=info, warnings=warnings)


def _hard_limit(budget_s: float) -> float:
    """When the parent kills a worker: the cell's budget plus a grace for its own clean stop."""
    return 1.25 * budget_s + 5.0


def available_bytes(device: str) -> tuple[float, str | None]:
    """Memory free on `device` now, and what went wrong where it cannot be known (then inf: the
    guard is off for that device, and the run's metadata and stderr say so)."""
    if device == "cuda":
        # nvidia-smi, not torch: a CUDA context in the parent would itself take GPU memory.
        import subprocess

        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=20)
            return float(done.stdout.split()[0]) * 2**20, None
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return math.inf, f"the GPU memory guard is off: nvidia-smi gave no free memory ({reason})"
    return float(psutil.virtual_memory().available), None
