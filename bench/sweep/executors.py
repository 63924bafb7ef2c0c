"""Where the parts of a sweep run: the executor seam, the local executor, and one part on this machine.

The parent (bench.sweep.runner) plans the sweep, decides what needs no machine and writes every row; an
executor runs parts and hands back an `Outcome` each. The local executor runs them here; bench.sweep.cluster
runs `run_part` on Dask workers. Nothing here knows the sweep's loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import psutil

import backends
import problems

from bench.core import defaults, environment, precision
from bench.core.cell import Cell, base_row
from bench.core.load import LoadMonitor
from bench.measure.solvers import measured_kind
from bench.sweep.workers import CellTimeout, Worker, WorkerCrashed


@dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = precision.DEFAULT  # float64; float32 beside it (bench.core.precision)
    modes: tuple[str, ...] = ("analytic", "autodiff")
    eps: float = defaults.EPS
    seed: int = defaults.SEED
    threads: int = 1
    eval_budget_s: float = defaults.EVAL_BUDGET_S
    solve_budget_s: float = defaults.SOLVE_BUDGET_S
    memory_fraction: float = defaults.MEMORY_FRACTION
    rtol: float = defaults.RTOL
    min_sample_s: float = defaults.SAMPLE_TIME_S
    target: float = defaults.TARGET  # the interval half-width at which a cell takes no more passes
    max_rounds: int = defaults.MAX_ROUNDS  # rounds (eval) or runs (solve) a part takes at most
    cuda_backends: tuple[str, ...] = ()  # the selected backends that see a CUDA GPU here
    measure: str = "time"  # or instructions, cycles: eval cells counted under callgrind (bench.measure.counting)
    # an A/B run (bench.ab): (name, interpreter, source tree) of each side; a cell's `side` picks its worker's
    sides: tuple[tuple[str, str, str], ...] = ()



def estimated_bytes(cell: Cell) -> int:
    """Peak bytes a cell may need in its worker, before it allocates anything: the instance's data
    as many times as the backend holds it (its record's data_copies), and what the derivative kind
    holds beyond the data (problems.Kind.working_bytes): a solver's, the kind it times (bench.measure.solvers)."""
    p = problems.get(cell.problem)
    working = problems.KINDS[measured_kind(cell.task, cell.derivative)].working_bytes
    return p.data_bytes(cell.n) * backends.get(cell.backend).data_copies + working(cell.n, p.dim(cell.n))



@dataclass(frozen=True)
class Outcome:
    """What one part of a cell gave: its rows, and what the parent records of the machine that ran it."""

    rows: list[dict]
    seconds: float | None = None  # the part's wall time on its machine; None: decided without running it
    blocks: str = ""  # why the larger sizes of its family are skipped; "" if they are not
    worker: str = ""  # the worker process that ran it: backend/device, and @ the Dask worker on a cluster
    info: dict | None = None  # that worker's setup facts (metadata "backends"), its first drift times included
    warnings: tuple[str, ...] = ()
    environment: dict | None = None  # a Dask worker's machine (bench.core.environment.collect), once per worker
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
    """Parts run here, each in its backend's worker process (kept for the sweep): one at a time, in
    this thread; or, `width` > 1 (counted runs only: a count does not move with what runs beside it,
    a time does), up to `width` at once from threads, each backend's worker one part at a time."""

    description: str = "local"
    width: int = 1
    settings: Settings | None = None
    workers: dict = field(default_factory=dict)
    queue: list = field(default_factory=list)  # width 1: the part offered
    running: dict = field(default_factory=dict)  # width > 1: future -> its part
    slots: dict = field(default_factory=dict)  # width > 1: (backend, device) -> the CPU slice of its worker
    pool: Any = None

    def start(self, settings: Settings) -> None:
        self.settings = settings
        if self.width > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=self.width, thread_name_prefix="nablabench-part")

    def has_room(self) -> bool:
        return len(self.queue) + len(self.running) < self.width

    def offer(self, part: Cell) -> bool:
        if self.pool is None:
            self.queue.append(part)
            return True
        key = _worker_key(part)
        taken = {self.slots[_worker_key(p)] for p in self.running.values()}
        if any(_worker_key(p) == key for p in self.running.values()) or self.slots.get(key) in taken:
            return False  # its worker is busy, or another runs on the CPU slice its worker keeps
        if key not in self.slots:  # a new worker: a slice no running part's worker has (has_room: one is free)
            self.slots[key] = min(set(range(self.width)) - taken)
        self.running[self.pool.submit(run_part, part, self.settings, self.workers, slot=self.slots[key])] = part
        return True

    def next_done(self) -> tuple[Cell, Outcome]:
        if self.pool is None:
            part = self.queue.pop(0)
            return part, run_part(part, self.settings, self.workers)
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        return self.running.pop(future), future.result()

    def renew(self, coming=()) -> None:
        """Stop every worker and launch the workers of the `coming` parts (an A/B run's next pass) side
        by side: each imports its framework on whichever CPU is free (width 1; counted workers start as
        their parts come): an A/B of the ci preset's least-squares cells at n = 100 in 4 passes took 61.9 s
        so and 80.4 s one start after another (interleaved, 2026-12-06). Nothing is timed until all of
        them have imported; each is then pinned, set up and timed alone when its
        first part runs (bench.sweep.workers.Worker.start)."""
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        if self.pool is not None:  # width > 1: each worker starts on the CPU slice `offer` gives it
            return
        for part in coming:
            if _worker_key(part) not in self.workers:
                self.workers[_worker_key(part)] = new_worker(part, self.settings)
                self.workers[_worker_key(part)].launch()
        for key, worker in list(self.workers.items()):
            try:
                worker.imported()
            except WorkerCrashed:  # stopped; its first part starts it again and its row says why it fails
                del self.workers[key]

    def finish(self) -> dict:
        if self.pool is not None:  # parts still running (Ctrl-C): their workers stopped, their threads end
            busy = {_worker_key(p) for p in self.running.values()}
            for key in busy & set(self.workers):
                self.workers.pop(key).stop(ask=False)
            self.pool.shutdown(wait=True, cancel_futures=True)
        return {_worker_name(w.backend, w.device, w.side[0] if w.side else ""): w.stop()
                for w in self.workers.values()}


def _worker_key(cell: Cell) -> tuple[str, str, str]:
    return cell.backend, cell.device, cell.side


def new_worker(cell: Cell, settings: Settings, slot: int = 0) -> Worker:
    """The worker (not started) that runs `cell`'s backend on its device, on its A/B side."""
    side = next((s for s in settings.sides if s[0] == cell.side), None) if cell.side else None
    return Worker(cell.backend, cell.device, settings.threads, slot=slot, measure=settings.measure, side=side)


def _worker_name(backend: str, device: str, side: str = "") -> str:
    return f"{backend}/{device}" + (f"@{side}" if side else "")



def run_part(part: Cell, settings: Settings, workers: dict, *, slot: int = 0) -> Outcome:
    """One part of a cell on this machine, in its backend's worker process (started on first use and
    kept in `workers`, on CPU slice `slot`): the memory guard, the load while it ran, a timeout or crash
    as a row. The local executor calls it here; bench.sweep.cluster calls it on a Dask worker."""
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
    key = _worker_key(cell)
    worker = workers.get(key)
    if worker is None:
        worker = workers[key] = new_worker(cell, settings, slot)
    name, info = _worker_name(*key), None
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

