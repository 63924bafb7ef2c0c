"""One subprocess per backend and device: a crash, hang or OOM kill costs one cell, not the sweep.

JAX and torch never share a process (nor its thread pools) while timing. The parent sends a cell;
the worker answers ("rows", [...]) per finished batch and ("now", what) before each step of the
cell (so that a timeout or crash can say which variant it caught), then ("done", None). Before each cell the
worker times the drift monitor's reference workload (bench.measure.drift) and stamps every row with it;
it times it once more when told to stop, and answers ("final", times).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from bench.measure.process import hide_gpus, main_module_hidden, pin_cpus, thread_variables


class CellTimeout(Exception):
    pass


class WorkerCrashed(Exception):
    pass


def _worker_main(conn, backend_name: str, device: str, threads: int, slot: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    if device == "cpu":
        hide_gpus()
    thread_variables(threads)
    import backends

    from bench.measure.cells import run_cell
    from bench.measure.context import Context
    from bench.measure.counting import DUMPS_VARIABLE
    from bench.measure.drift import reference_times

    # Its framework imported on any CPU, then word to the parent, which may be starting other workers
    # beside it (Worker.launch); the rest once the parent says go, with the CPUs to itself.
    for module in backends.get(backend_name).imports:
        importlib.import_module(module)
    conn.send(("imported", None))
    if conn.recv() is None:
        return
    pin_cpus(threads, slot)
    from threadpoolctl import threadpool_info, threadpool_limits

    backend = backends.get(backend_name)
    info = backend.setup(threads, device)
    limiter = threadpool_limits(limits=threads)  # noqa: F841  (kept alive for the process)
    info["threadpools"] = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for p in threadpool_info()
    ]
    info["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    info["device"] = device
    info["gpu_env"] = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS")}
    # the drift monitor's workload times the machine; under callgrind (a counted worker) it would take
    # seconds a cell and say nothing about the counts
    timed = os.environ.get(DUMPS_VARIABLE) is None
    drift = reference_times if timed else dict
    info["drift_start"] = drift()
    conn.send(("ready", info))
    ctx = Context(backend)
    while True:
        cell = conn.recv()
        if cell is None:
            conn.send(("final", drift()))
            return
        reference = drift()
        for kind, payload in run_cell(cell, ctx):
            conn.send((kind, [dict(row, **reference) for row in payload] if kind == "rows" else payload))
        conn.send(("done", None))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "worker stopped answering"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's OOM killer sends this when memory runs out)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code}"


# Held while a worker is spawned: what the spawn reads (the `__main__` module, the interpreter to start)
# is swapped for it, and counted runs start workers from several threads (bench.sweep.executors).
SPAWNING = threading.Lock()

# A counted worker's environment and arguments together take a multiple of this many bytes (under_callgrind).
STARTING_BYTES = 4096
STACK_PAD_VARIABLE = "NABLABENCH_STACK_PAD"


@contextlib.contextmanager
def under_callgrind(measure: str):
    """While a counted worker (`measure` instructions or cycles) is spawned: multiprocessing's spawn
    starts the interpreter through a launcher that runs it under callgrind (bench.measure.callgrind.command),
    its dumps in a fresh folder. Yields that folder (None for a timed worker)."""
    if measure == "time":
        yield None
        return
    import shlex
    import tempfile
    from multiprocessing import resource_tracker, spawn

    from bench.measure.callgrind import command
    from bench.measure.counting import DUMPS_VARIABLE

    folder = Path(tempfile.mkdtemp(prefix="nablabench-callgrind-"))
    launcher = folder / "python-under-callgrind"
    python = os.fsdecode(spawn.get_executable())  # this interpreter, or an A/B side's (in_side)
    line = " ".join(shlex.quote(a) for a in command(folder, cache_sim=measure == "cycles") + [python])
    # One string hash seed for every counted worker: a dict's collisions, and so its lookups' instructions,
    # then repeat between processes. And one size of the strings the process starts with (its environment
    # and arguments, copied onto its stack): their size sets the stack's layout, and a few bytes more (a
    # pipe's descriptor of two digits, a longer interpreter path) moved counts by up to 1.8% (docs/counts.md).
    # The launcher pads the environment to the next multiple of STARTING_BYTES but one.
    launcher.write_text(
        "#!/bin/sh\n"
        f"export {DUMPS_VARIABLE}={shlex.quote(str(folder))} PYTHONHASHSEED=0 {STACK_PAD_VARIABLE}=\n"
        f"size=$(( $(env | wc -c) + {len(os.fsencode(python)) + 1} ))\n"
        'for a in "$@"; do size=$((size + ${#a} + 1)); done\n'
        f"{STACK_PAD_VARIABLE}=$(printf '%*s' $(( ({STARTING_BYTES} - size % {STARTING_BYTES}) % {STARTING_BYTES}"
        f" + {STARTING_BYTES} )) '')\n"
        f'exec {line} "$@"\n')
    launcher.chmod(0o755)
    resource_tracker.ensure_running()  # started with the plain interpreter, before the launcher takes its place
    spawn.set_executable(str(launcher))
    try:
        yield folder
    finally:
        spawn.set_executable(python)


@contextlib.contextmanager
def in_side(side: tuple[str, str, str] | None):
    """While an A/B side's worker is spawned (bench.ab): the spawn starts the side's interpreter with
    its source tree first on the path, so that the worker imports that tree's problems, backends and
    bench (the measuring code under test) and that interpreter's libraries, and nothing of this one's."""
    if side is None:
        yield
        return
    from multiprocessing import spawn

    _, python, tree = side
    saved_path, saved_python = list(sys.path), spawn.get_executable()
    sys.path[:] = [tree, *interpreter_path(python)]
    spawn.set_executable(python)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        spawn.set_executable(saved_python)


@functools.lru_cache(maxsize=None)
def interpreter_path(python: str) -> tuple[str, ...]:
    """An interpreter's own module path (its standard library and site-packages), asked of it."""
    import json
    import subprocess

    code = "import json, sys; print(json.dumps(sys.path[1:]))"
    done = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout))


class Worker:
    """A lazily started worker process for one backend on one device (on CPU slice `slot`); `measure`
    instructions or cycles: under callgrind, counting instead of timing (bench.measure.counting); `side`
    (name, interpreter, source tree): an A/B run's side, whose code and libraries it runs (in_side)."""

    def __init__(self, backend: str, device: str, threads: int, *, slot: int = 0, startup_timeout_s: float = 300.0,
                 measure: str = "time", side: tuple[str, str, str] | None = None):
        self.backend, self.device, self.threads, self.slot = backend, device, threads, slot
        self.side = side
        self.startup_timeout_s = startup_timeout_s
        self.measure = measure
        self.dumps: Path | None = None  # a counted worker's callgrind folder, removed when it stops
        self.process = None
        self.conn = None
        self.info: dict = {}
        self.stage = ""  # launched, imported, ready (or "": not running)
        self.now = ""  # what the cell in flight said it was doing last

    def launch(self) -> None:
        """Spawn the process and return: it imports its framework, on any CPU, then waits for `start`.
        An A/B run launches a pass's workers together (bench.sweep.executors.LocalExecutor.renew)."""
        if self.process is not None and self.process.is_alive():
            return
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main,
                                       args=(child, self.backend, self.device, self.threads, self.slot),
                                       name=f"nablabench-{self.backend}-{self.device}", daemon=True)
        with SPAWNING, main_module_hidden(), in_side(self.side), under_callgrind(self.measure) as self.dumps:
            self.process.start()
        child.close()
        self.stage = "launched"

    def imported(self) -> None:
        """Wait until a launched worker has imported its framework (a tree from before the word
        `imported`, an A/B run's older side, starts in full and says `ready`)."""
        if self.stage == "launched":
            kind, payload = self._starting()
            self.stage, self.info = ("imported", {}) if kind == "imported" else ("ready", payload)

    def start(self) -> dict:
        """The worker ready, pinned to its CPUs and set up (launched first where it is not)."""
        if self.process is None or not self.process.is_alive():
            self.launch()
        self.imported()
        if self.stage == "imported":
            self.conn.send("go")
            _, self.info = self._starting()
            self.stage = "ready"
        return self.info

    def _starting(self) -> tuple[str, dict]:
        if not self.conn.poll(self.startup_timeout_s):
            self.stop(ask=False)
            raise WorkerCrashed(f"{self.backend} worker did not start in {self.startup_timeout_s:g} s")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            code = self._reap()
            raise WorkerCrashed(f"{self.backend} worker failed at start: {describe_exit(code)}") from None

    def run(self, cell, timeout_s: float) -> Iterator[list[dict]]:
        """Yield the cell's rows as they come; CellTimeout or WorkerCrashed end it early, saying
        what the cell was doing (`now`)."""
        self.start()
        self.conn.send(cell)
        self.now = ""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.conn.poll(remaining):
                self.stop(ask=False)
                raise CellTimeout(f"cell exceeded its time budget of {timeout_s:g} s{self._doing()}")
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                code = self._reap()
                raise WorkerCrashed(describe_exit(code) + self._doing()) from None
            if kind == "done":
                return
            if kind == "now":
                self.now = payload
                continue
            yield payload

    def _doing(self) -> str:
        return f" while {self.now}" if self.now else ""

    def _reap(self) -> int | None:
        self.process.join(timeout=5)
        code = self.process.exitcode
        self.stop(ask=False)
        return code

    def stop(self, *, ask: bool = True) -> dict | None:
        """End the process; returns its last drift-monitor times where it was asked and answered."""
        if self.process is None:
            return None
        final = None
        if ask and self.stage == "ready" and self.process.is_alive():
            try:
                self.conn.send(None)
                if self.conn.poll(2.0):
                    kind, payload = self.conn.recv()
                    final = payload if kind == "final" else None
            except (OSError, ValueError, EOFError):
                pass
            self.process.join(timeout=0.5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()
        self.process, self.stage = None, ""
        if self.dumps is not None:
            shutil.rmtree(self.dumps, ignore_errors=True)
        return final
