"""The sweep: plan cells, guard memory, dispatch to workers, write rows. Never raises per cell."""
from __future__ import annotations

import math
import signal
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

import backends
import problems

from . import environment
from .cells import KEY, Cell, base_row
from .presets import Job
from .results import SCHEMA_VERSION, CsvSink, read_results, write_metadata
from .workers import CellTimeout, Worker, WorkerCrashed

# Skip all larger sizes of the same cell after one of these.
BLOCKING_STATUSES = ("timeout", "crashed", "skipped_memory")


@dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    modes: tuple[str, ...] = ("analytic", "autodiff")
    eps: float = 1e-9
    seed: int = 0
    threads: int = 1
    eval_budget_s: float = 120.0
    solve_budget_s: float = 300.0
    memory_fraction: float = 0.7
    rtol: float = 1e-8
    min_sample_s: float = 0.02
    cuda_backends: tuple[str, ...] = ()  # the selected backends that see a CUDA GPU here


def plan(jobs: tuple[Job, ...], settings: Settings) -> list[Cell]:
    """Cells in run order: per job, problem and size, the backends interleaved (drift spreads)."""
    cells = []
    for job in jobs:
        for problem in job.problems:
            defined = problems.get(problem).derivatives
            for n in job.sizes:
                # solve's "gd" runs wherever a gradient exists (it skips, with the reason, where f* is
                # unknown); eval cells only for the derivative kinds the problem defines
                for derivative in [d for d in job.derivatives if d in defined or (d == "gd" and "grad" in defined)]:
                    for device in settings.devices:
                        for name in settings.backends:
                            b = backends.get(name)
                            modes = tuple(m for m in settings.modes if m in b.modes)
                            if not modes or (device == "cuda" and name not in settings.cuda_backends):
                                continue
                            cells.append(Cell(
                                task=job.task, problem=problem, n=n, backend=name, device=device,
                                derivative=derivative, modes=modes, seed=settings.seed,
                                samples=job.samples, min_sample_s=settings.min_sample_s,
                                repeats=job.repeats, eps=settings.eps, rtol=settings.rtol,
                                time_budget_s=settings.solve_budget_s if job.task == "solve"
                                else settings.eval_budget_s))
    return cells


def estimated_bytes(cell: Cell) -> int:
    """Peak bytes a cell may need in its worker, before it allocates anything.

    Data: the numpy instance, its backend copy (JAX copies; torch shares on the CPU) and the
    generator's temporaries. Outputs: every variant's result plus the reference; a dense autodiff
    Hessian builds up to ~5 N x N intermediates: peaks measured at n = 1500 were 3.6 N^2 x 8 bytes
    (numpy), 4.5 (jax.hessian), 5.0 (torch.func.hessian), 3.5-4.9 (autograd), plus the reference.
    A Jacobian by forward mode pushes an N x N identity of tangents.
    """
    p = problems.get(cell.problem)
    dim = p.dim(cell.n)
    data = p.data_bytes(cell.n) * (3 if cell.backend == "jax" else 2)
    if cell.derivative == "hess":
        return data + 8 * dim * dim * (4 + 4)
    if cell.derivative == "jac":  # (n, dim) out, reference and a jacfwd basis of dim x dim
        return data + 8 * (dim * dim + 4 * cell.n * dim)
    return data + 8 * dim * 16


def estimated_seconds(cell: Cell) -> float:
    """A rough cost model for the progress bar's ETA (memory-bound matvecs at ~20 GB/s)."""
    variants = {"numpy": 1, "autograd": 1, "jax": 4, "torch": 3}.get(cell.backend, 2)
    matvec = 8 * cell.n * cell.n / 2e10
    if cell.task == "solve":
        return variants * (cell.repeats + 1) * 40 * (2 * matvec + 5e-5) + 0.2
    if cell.derivative == "hess":
        per_call = 2 * cell.n**3 / 2e10 if cell.backend != "autograd" else cell.n * 4 * matvec
        return variants * (0.25 + 10 * per_call)
    return variants * (0.25 + 10 * 2 * matvec)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_sweep(cells: list[Cell], settings: Settings, out: Path, *, resume: bool,
              progress: bool = True, log=print) -> dict:
    """Run every cell; returns a summary. Rows reach `out` as each cell ends."""
    run_id = uuid.uuid4().hex[:12]
    done, blocked = _earlier_run(out) if resume else (set(), {})
    todo = [c for c in cells if c.key not in done]
    meta = environment.collect(settings.threads)
    meta.update(run_id=run_id, started=_now(), settings=settings.__dict__, cells_planned=len(cells),
                cells_resumed=len(cells) - len(todo), schema_version=SCHEMA_VERSION, backends={},
                drift={}, interleaving="eval variants in rounds, solve variants in repeats, each in a "
                "random order seeded by (seed, crc32 of the cell key); `position` records it")
    sink = CsvSink(out, append=resume)
    write_metadata(out, run_id, meta)
    workers: dict[tuple[str, str], Worker] = {}
    statuses: Counter = Counter()
    bar = _progress_bar(todo, progress)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        for cell in todo:
            bar.set_postfix_str(f"{cell.task} {cell.problem} n={cell.n} {cell.backend} {cell.derivative}")
            rows = _run_one(cell, settings, workers, blocked, meta)
            _record_drift(meta, cell, rows)
            stamp = _now()
            rows = [dict(r, schema_version=SCHEMA_VERSION, run_id=run_id, timestamp=stamp) for r in rows]
            sink.write(rows)
            statuses.update(r["status"] for r in rows)
            bar.update(estimated_seconds(cell))
    except KeyboardInterrupt:
        interrupted = True  # the cell in flight is dropped whole; --resume runs it again
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        for worker in workers.values():
            final = worker.stop()
            if final is not None:
                meta["drift"].setdefault(_worker_name(worker), {})["end"] = final
        sink.close()
        meta.update(finished=_now(), interrupted=interrupted, statuses=dict(statuses))
        write_metadata(out, run_id, meta)
    return {"run_id": run_id, "interrupted": interrupted, "statuses": dict(statuses),
            "cells_run": len(todo), "cells_resumed": len(cells) - len(todo)}


def _earlier_run(out: Path) -> tuple[set[tuple], dict[tuple, tuple[int, str]]]:
    """The cell keys an earlier (interrupted) run of `out` finished, and the families it blocked."""
    if not out.exists() or out.stat().st_size == 0:
        return set(), {}
    frame = read_results([out])
    done = {tuple(r) for r in frame[list(KEY)].itertuples(index=False, name=None)}
    blocked = {}
    for row in frame[frame["status"].isin(BLOCKING_STATUSES)].sort_values("n").itertuples():
        family = (row.task, row.problem, row.backend, row.device, row.derivative)
        blocked.setdefault(family, (row.n, f"skipped after n={row.n} ended `{row.status}`"))
    return done, blocked


def _worker_name(worker) -> str:
    return f"{worker.backend}/{worker.device}"


def _record_drift(meta: dict, cell: Cell, rows: list[dict]) -> None:
    """The drift monitor's times before this cell, in its worker's series (seconds since start)."""
    stamped = [r for r in rows if "ref_numpy_s" in r]
    if stamped:
        series = meta["drift"].setdefault(f"{cell.backend}/{cell.device}", {}).setdefault("cells", [])
        series.append([stamped[0]["ref_numpy_s"], stamped[0]["ref_python_s"]])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress_bar(cells: list[Cell], enabled: bool):
    from tqdm import tqdm

    total = sum(estimated_seconds(c) for c in cells)
    interactive = sys.stderr.isatty()
    return tqdm(total=total, disable=not enabled, unit="s", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if interactive else 15.0,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", smoothing=0.05)


def _run_one(cell: Cell, settings: Settings, workers: dict, blocked: dict, meta: dict) -> list[dict]:
    family = (cell.task, cell.problem, cell.backend, cell.device, cell.derivative)
    if family in blocked and cell.n > blocked[family][0]:
        return [base_row(cell, mode="", variant="", status="skipped", message=blocked[family][1])]
    limit = problems.get(cell.problem).size_limits.get(cell.derivative)
    if limit is not None and cell.n > limit:
        return [base_row(cell, mode="", variant="", status="skipped",
                         message=f"{cell.problem} declares {cell.derivative} only up to n={limit}")]
    need = estimated_bytes(cell)
    have = _available_bytes(cell.device) * settings.memory_fraction
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


def _available_bytes(device: str) -> float:
    if device == "cuda":
        # nvidia-smi, not torch: a CUDA context in the parent would itself take GPU memory.
        import subprocess

        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=20)
            return float(done.stdout.split()[0]) * 2**20
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return math.inf
    return float(psutil.virtual_memory().available)
