"""The sweep: plan cells, guard memory, dispatch to workers, write rows. Never raises per cell."""
from __future__ import annotations

import math
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

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

    def seconds_left(self) -> float:
        overall = (sum(self.actual.values()) / sum(self.estimated.values())) if self.estimated else 1.0
        return sum(max(left, 0.0) * (self.actual[g] / self.estimated[g] if self.estimated[g] > 1.0 else overall)
                   for g, left in self.left.items())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_sweep(cells: list[Cell], settings: Settings, out: Path, *, resume: bool,
              progress: bool = True, log=print) -> dict:
    """Run every cell in `settings.passes` passes; returns a summary. Rows reach `out` as each
    part of a cell ends, so an interrupted run loses at most the part in flight."""
    run_id = uuid.uuid4().hex[:12]
    done, blocked, untimed = _earlier_run(out) if resume else (set(), {}, set())
    schedule = [part for p in range(settings.passes) for cell in cells for part in parts(cell, settings.passes)
                if part.part == p and (*part.key, p) not in done]
    meta = environment.collect(settings.threads)
    meta.update(run_id=run_id, started=_now(), settings=settings.__dict__, cells_planned=len(cells),
                parts_planned=len(schedule), parts_resumed=len(done), schema_version=SCHEMA_VERSION,
                backends={}, drift={}, warnings=[], load_start=load_snapshot(),
                interleaving=f"{settings.passes} passes over the sweep, each taking its share of every cell's rounds "
                "(eval) or repeats (solve); within a part, variants in a fresh random order per round, seeded by "
                "(seed, crc32 of the cell key, first round); `part` and `position` record it")
    if not resume:  # a new run replaces the CSV and its metadata
        metadata_path(out).unlink(missing_ok=True)
    sink = CsvSink(out, append=resume)
    write_metadata(out, run_id, meta)
    workers: dict[tuple[str, str], Worker] = {}
    monitor = LoadMonitor()
    statuses: Counter = Counter()
    bar = _progress_bar(progress)
    eta = Eta(schedule)
    sweep_started = time.monotonic()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        for part in schedule:
            bar.set_postfix_str(f"pass {part.part + 1}/{settings.passes} {part.task} {part.problem} n={part.n} "
                                f"{part.backend} {part.derivative}")
            if part.part > 0 and _settled(part, untimed, blocked):
                _advance(bar, eta, part, None, time.monotonic() - sweep_started)
                continue
            part_started = time.monotonic()
            started = monitor.start()
            rows = _run_one(part, settings, workers, blocked, meta)
            load = monitor.stop(started)
            if part.part == 0 and not any(r["status"] == "ok" for r in rows):  # later parts would repeat it
                untimed.add(part.key)
            _record_drift(meta, part, rows)
            stamp = _now()
            rows = [dict(r, schema_version=SCHEMA_VERSION, run_id=run_id, timestamp=stamp, **load) for r in rows]
            sink.write(rows)
            statuses.update(r["status"] for r in rows)
            _advance(bar, eta, part, time.monotonic() - part_started, time.monotonic() - sweep_started)
    except KeyboardInterrupt:
        interrupted = True  # the part in flight is dropped whole; --resume runs it again
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        for worker in workers.values():
            final = worker.stop()
            if final is not None:
                meta["drift"].setdefault(_worker_name(worker), {})["end"] = final
        sink.close()
        meta.update(finished=_now(), interrupted=interrupted, statuses=dict(statuses), load_end=load_snapshot())
        write_metadata(out, run_id, meta)
    return {"run_id": run_id, "interrupted": interrupted, "statuses": dict(statuses),
            "parts_run": len(schedule), "parts_resumed": len(done)}


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
    family = (part.task, part.problem, part.backend, part.device, part.derivative)
    return part.key in untimed or (family in blocked and part.n >= blocked[family][0])


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
        family = (row.task, row.problem, row.backend, row.device, row.derivative)
        blocked.setdefault(family, (row.n, f"skipped after n={row.n} ended `{row.status}`"))
    first = frame[frame["part"] == 0]
    timed = {tuple(r) for r in first[first["status"] == "ok"][list(KEY)].itertuples(index=False, name=None)}
    untimed = {tuple(r) for r in first[list(KEY)].itertuples(index=False, name=None)} - timed
    return done, blocked, untimed


def _worker_name(worker) -> str:
    return f"{worker.backend}/{worker.device}"


def _record_drift(meta: dict, cell: Cell, rows: list[dict]) -> None:
    """The drift monitor's times before this cell, in its worker's series."""
    stamped = [r for r in rows if "ref_numpy_s" in r]
    if stamped:
        series = meta["drift"].setdefault(f"{cell.backend}/{cell.device}", {}).setdefault("cells", [])
        series.append([stamped[0]["ref_numpy_s"], stamped[0]["ref_python_s"]])


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


def _advance(bar, eta: Eta, part: Cell, seconds: float | None, spent: float) -> None:
    eta.done(part, seconds)
    bar.total = spent + eta.seconds_left()
    bar.update(spent - bar.n)


def _run_one(cell: Cell, settings: Settings, workers: dict, blocked: dict, meta: dict) -> list[dict]:
    family = (cell.task, cell.problem, cell.backend, cell.device, cell.derivative)
    if family in blocked and cell.n > blocked[family][0]:
        return [base_row(cell, mode="", variant="", status="skipped", message=blocked[family][1])]
    limit = problems.get(cell.problem).size_limits.get(cell.derivative)
    if limit is not None and cell.n > limit:
        return [base_row(cell, mode="", variant="", status="skipped",
                         message=f"{cell.problem} declares {cell.derivative} only up to n={limit}")]
    need = estimated_bytes(cell)
    free, problem = available_bytes(cell.device)
    if problem and problem not in meta["warnings"]:
        meta["warnings"].append(problem)
        print(f"nablabench: warning: {problem}", file=sys.stderr)
    have = free * settings.memory_fraction
    if need > have:
        message = f"needs ~{need / 2**30:.1f} GiB, budget {have / 2**30:.1f} GiB"
        blocked[family] = (cell.n, f"skipped after n={cell.n}: {message}")
        return [base_row(cell, mode="", variant="", status="skipped_memory", message=message)]
    key = (cell.backend, cell.device)
    worker = workers.get(key)
    if worker is None:
        worker = workers[key] = Worker(cell.backend, cell.device, settings.threads)
    rows: list[dict] = []
    try:
        info = dict(worker.start())
        meta["drift"].setdefault(_worker_name(worker), {}).setdefault("start", info.pop("drift_start", None))
        meta["backends"].setdefault(_worker_name(worker), info)
        for batch in worker.run(cell, timeout_s=_hard_limit(cell.time_budget_s)):
            rows.extend(batch)
        return rows
    except (CellTimeout, WorkerCrashed) as exc:
        status = "timeout" if isinstance(exc, CellTimeout) else "crashed"
        finished = sorted({r["mode"] + "/" + r["variant"] for r in rows})
        message = f"{exc}" + (f"; finished before: {', '.join(finished)}" if finished else "")
        blocked[family] = (cell.n, f"skipped after n={cell.n} ended `{status}`")
        return rows + [base_row(cell, mode="", variant="", status=status, message=message)]


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
