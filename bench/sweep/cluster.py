"""`--executor dask`: the parts of a sweep run on a Dask cluster; the parent plans them and writes every row.

Each Dask worker keeps its own worker processes (bench.sweep.workers, one per backend and device) for the
sweep, as the local executor does, so a crash or hang still costs one cell. Timing fidelity:

- one part at a time per Dask worker: a part needs the worker resource `bench` (workers declare
  `--resources bench=1`; a CUDA part also needs `gpu`), and the parent sends a worker a part only
  when it has none of ours in flight;
- a family (a cell over its sizes) stays on the worker that ran its first part, so a cell's passes
  and a curve's sizes are timed on one machine (unless that worker dies);
- Dask workers that share a host take distinct CPU slices (a lock file per slice) and are named in
  a warning, and their rows say how many shared it (`host_workers`).

A Dask worker that dies while it runs a part (the scheduler tries a task once: allowed_failures 0)
costs a second try on another worker; a second death gives the part a `crashed` row. Dask worker
processes must not be daemons, since they start processes of their own: `distributed.worker.daemon`
False (DASK_DISTRIBUTED__WORKER__DAEMON=False for workers started by hand).
"""
from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import dask
from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.comm import connect, parse_address, parse_host_port
from distributed.security import Security

import problems

from bench.core import environment
from bench.core.cell import Cell, base_row
from bench.core.schema import family
from bench.measure.process import main_module_hidden
from bench.sweep.executors import Outcome, Settings, failed, run_part

CONNECT_TIMEOUT_S = 10.0  # for a scheduler to accept and answer, all told: then the run stops with a message
PLUGIN = "nablabench"
EXPECTED = "Expected an address such as tcp://HOST:8786 of a running `dask scheduler`."


class ClusterError(Exception):
    """The cluster cannot run a sweep: unreachable, or its workers cannot run parts."""


class BenchPool(WorkerPlugin):
    """On each Dask worker, for one sweep: its worker processes, and the CPU slice they take."""

    def __init__(self, local: bool):
        self.local = local  # the Dask worker belongs to this sweep's own LocalCluster

    def setup(self, worker):
        if self.local and threading.current_thread() is threading.main_thread():
            # Ctrl-C in a terminal reaches the whole process group: the parent decides what it means
            # (rows kept, exit 130) and closes its cluster; its workers need not print tracebacks.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.workers: dict = {}
        self.described = False  # whether a part has carried this machine's environment back yet
        self.slot, self._lock = _claim_slot()

    def teardown(self, worker):
        self.stop()
        if self._lock is not None:
            self._lock.close()

    def stop(self) -> dict:
        """Stop the worker processes; their last drift-monitor times, by backend/device."""
        finals = {}
        for w in self.workers.values():
            try:
                finals[f"{w.backend}/{w.device}"] = w.stop()
            except (AttributeError, OSError, ValueError):
                # After Ctrl-C a part may still run in this worker's task thread, which then finds
                # its process gone and stops it itself: no final times from it.
                finals[f"{w.backend}/{w.device}"] = None
        self.workers.clear()
        return finals


def _claim_slot() -> tuple[int, object]:
    """The first CPU slice no other Dask worker on this host holds (a lock file per slice; the
    kernel releases it when its worker dies). Slot i takes the i-th slice from the last CPU."""
    for slot in range(256):
        handle = open(Path(tempfile.gettempdir()) / f"nablabench-slot-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return slot, handle
        except OSError:
            handle.close()
    return 0, None


def _run(part: Cell, settings: Settings) -> tuple[Outcome, str]:
    """The task: one part on this Dask worker, and the worker's address."""
    worker = get_worker()
    pool = worker.plugins[PLUGIN]
    if part.source:  # a problem from a file or module (importable here too), or pickled by value
        problems.load(part.source)
    outcome = run_part(part, settings, pool.workers, slot=pool.slot)
    if not pool.described:
        pool.described = True
        outcome = replace(outcome, environment=environment.collect(settings.threads))
    return outcome, worker.address


def _stop_pool(dask_worker) -> dict:
    pool = dask_worker.plugins.get(PLUGIN)
    return pool.stop() if pool is not None else {}


def _allowed_failures(value: int, dask_scheduler=None) -> int:
    # 0 during a sweep: a task whose worker dies is not run again by the scheduler, the parent
    # decides (one retry); the cluster's own setting comes back afterwards.
    previous, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, value
    return previous


def _is_daemon() -> bool:
    return multiprocessing.current_process().daemon


def _check_scheduler(address: str) -> None:
    """That a Dask scheduler answers at `address`, within CONNECT_TIMEOUT_S all told; else
    ValueError (a malformed address), OSError (a port that refuses) or ClusterError saying what happened.

    distributed's Client cannot be trusted with this: at a server that accepts a connection and
    then does not speak Dask's protocol (an HTTP server, a proxy) it waits with no end, or reads
    the reply's first bytes as a frame length and fails deep inside ("Unable to allocate 3.07 EiB").
    """
    scheme, location = parse_address(address)  # ValueError on a malformed address
    if scheme not in ("tcp", "tls"):
        return  # (inproc, ucx, ws: left to the Client)
    host, port = parse_host_port(location)  # ValueError without a port
    start = time.monotonic()
    try:  # a port that refuses does so at once (distributed's connect would retry it until the timeout)
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except TimeoutError:
        raise ClusterError(f"No Dask scheduler answered at {address} within {CONNECT_TIMEOUT_S:g} s: nothing "
                           f"accepted the connection. {EXPECTED}") from None
    left = max(CONNECT_TIMEOUT_S - (time.monotonic() - start), 1.0)
    answer: dict = {}
    # in a thread of its own, with its own event loop: the caller may be running one (Jupyter)
    thread = threading.Thread(target=_ask_identity, args=(address, left, answer), daemon=True,
                              name="nablabench-scheduler-probe")
    thread.start()
    thread.join(left + 1.0)  # wait_for below ends it within `left`; the second is a margin
    reply, error = answer.get("reply"), answer.get("error")
    if error is None and reply is None or isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        raise ClusterError(f"No Dask scheduler answered at {address} within {CONNECT_TIMEOUT_S:g} s: something "
                           f"accepted the connection, but said nothing a Dask client understands. {EXPECTED}")
    if error is not None:
        said = f"{type(error).__name__}: {error}"[:200]
        raise ClusterError(f"What listens at {address} does not answer as a Dask scheduler: its reply is not in "
                           f"Dask's protocol ({said}). {EXPECTED}")
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        what = f"a Dask {reply['type']}" if isinstance(reply, dict) and "type" in reply else "no Dask server"
        raise ClusterError(f"What answers at {address} is {what}, not a scheduler. {EXPECTED}")


def _ask_identity(address: str, timeout: float, answer: dict) -> None:
    """Ask `address` who it is (the scheduler's `identity` call) within `timeout`: its reply, or the
    error, into `answer`."""
    async def ask():
        comm = await connect(address, timeout=timeout, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        answer["reply"] = asyncio.run(asyncio.wait_for(ask(), timeout))
    except BaseException as exc:  # any failure to answer is the answer
        answer["error"] = exc


class DaskExecutor:
    """Parts run on a Dask cluster (bench.sweep.executors.Executor): a running one, or a LocalCluster here."""

    def __init__(self, client: Client, cluster: LocalCluster | None, description: str):
        self.client, self.cluster, self.description = client, cluster, description
        self.settings: Settings | None = None
        self.allowed_failures = 0  # the scheduler's own, restored when the sweep ends
        self.futures: dict = {}  # future -> (part, tries)
        self.running: dict = {}  # future -> the worker address it was sent to (None: any)
        self.home: dict = {}  # family -> the worker that ran its latest part
        self.workers: dict[str, dict] = {}  # address -> its scheduler info (those with a `bench` slot)
        self.shared: set = set()  # hosts already named as shared
        self.completed = as_completed(loop=client.loop)
        self._refresh()

    @classmethod
    def open(cls, scheduler: str | None = None, workers: int = 1) -> DaskExecutor:
        """Connect to `scheduler`, or start a LocalCluster of `workers` single-threaded processes.
        Raises ClusterError saying what is wrong."""
        dask.config.set({"distributed.worker.daemon": False})
        cluster = None
        try:
            if scheduler:
                _check_scheduler(scheduler)
                client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
                description = f"dask: scheduler {scheduler}"
            else:
                # its worker processes are spawned: they must not run the user's script again either
                with main_module_hidden():
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           resources={"bench": 1}, dashboard_address=None, silence_logs=40)
                    client = Client(cluster, set_as_default=False)
                    client.wait_for_workers(workers, timeout=120)  # all of them from the first part: families stay put
                description = f"dask: LocalCluster of {workers} worker(s)"
        except ClusterError:
            raise  # (from _check_scheduler: nothing started yet)
        except (OSError, ValueError, TimeoutError) as exc:
            if cluster is not None:
                cluster.close()
            where = f"the Dask scheduler `{scheduler}`" if scheduler else "a local Dask cluster"
            raise ClusterError(f"Cannot reach {where}: {exc or type(exc).__name__}. {EXPECTED}") from None
        executor = cls(client, cluster, description)
        try:
            executor._check_workers()
        except ClusterError:
            executor.close()
            raise
        return executor

    def _check_workers(self) -> None:
        daemons = sorted(a for a, daemon in self.client.run(_is_daemon).items() if daemon)
        if daemons:
            raise ClusterError(f"Dask worker(s) {', '.join(daemons)} are daemonic processes, which cannot start "
                               "nablabench's worker processes: start them with DASK_DISTRIBUTED__WORKER__DAEMON=False.")
        every = self.client.scheduler_info(n_workers=-1)["workers"]
        if every and not self.workers:
            raise ClusterError(f"None of the cluster's {len(every)} Dask worker(s) has a `bench` resource: "
                               "start them with `dask worker ADDRESS --nthreads 1 --resources bench=1` "
                               "(bench=1,gpu=1 with a GPU).")
        if not every:
            print("nablabench: no Dask worker yet; parts wait for one with a `bench` resource", file=sys.stderr)

    @property
    def gpus(self) -> bool:
        return any(info["resources"].get("gpu") for info in self.workers.values())

    @property
    def width(self) -> int:
        return max(1, len(self.workers))

    def _refresh(self) -> None:
        every = self.client.scheduler_info(n_workers=-1)["workers"]
        self.workers = {a: info for a, info in every.items() if info.get("resources", {}).get("bench")}

    def _host_workers(self, address: str) -> int:
        host = self.workers.get(address, {}).get("host")
        return max(1, sum(info.get("host") == host for info in self.workers.values()))

    def start(self, settings: Settings) -> None:
        self.settings = settings
        self.allowed_failures = self.client.run_on_scheduler(_allowed_failures, 0)
        self.client.register_plugin(BenchPool(local=self.cluster is not None), name=PLUGIN)

    def has_room(self) -> bool:
        return bool(self._idle()) or (not self.workers and not self.running)

    def _idle(self) -> list[str]:
        return sorted(set(self.workers) - set(self.running.values()))

    def _choose(self, part: Cell) -> str | None | bool:
        """The idle worker `part` goes to; None: any (no worker can take it yet); False: wait."""
        gpu = part.device == "cuda"
        suitable = {a for a, info in self.workers.items() if not gpu or info["resources"].get("gpu")}
        if not suitable:
            return None
        idle = [a for a in self._idle() if a in suitable]
        home = self.home.get(family(part))
        if home in suitable:
            return home if home in idle else False
        # CPU parts leave the GPU workers free where they can
        return (min(idle, key=lambda a: (bool(self.workers[a]["resources"].get("gpu")) and not gpu, a))
                if idle else False)

    def offer(self, part: Cell) -> bool:
        address = self._choose(part)
        if address is False:
            return False
        self._submit(part, address, tries=0)
        return True

    def _submit(self, part: Cell, address: str | None, tries: int) -> None:
        resources = {"bench": 1, "gpu": 1} if part.device == "cuda" else {"bench": 1}
        future = self.client.submit(_run, part, self.settings, resources=resources, pure=False,
                                    workers=[address] if address else None, allow_other_workers=bool(address))
        self.futures[future] = (part, tries)
        self.running[future] = address
        self.completed.add(future)

    def next_done(self) -> tuple[Cell, Outcome]:
        while True:
            future = next(self.completed)
            part, tries = self.futures.pop(future)
            del self.running[future]
            try:
                outcome, address = future.result()
            except KilledWorker as exc:
                self._refresh()
                if tries == 0:
                    print(f"nablabench: a Dask worker died running {part.task} {part.problem} n={part.n} "
                          f"{part.backend} {part.derivative}; running it again", file=sys.stderr)
                    self.home.pop(family(part), None)
                    idle = self._idle()
                    self._submit(part, idle[0] if idle else None, tries=1)
                    continue
                outcome, address = failed(part, "crashed", f"its Dask worker died, twice: {exc}"), ""
            except Exception as exc:  # the task failed on its worker (e.g. a problem file missing there)
                outcome, address = Outcome(rows=[base_row(
                    part, mode="", variant="", status="error",
                    message=f"on its Dask worker: {type(exc).__name__}: {exc}")]), ""
            finally:
                future.release()
            self._refresh()
            return part, self._stamped(part, outcome, address)

    def _stamped(self, part: Cell, outcome: Outcome, address: str) -> Outcome:
        """Where it ran: its family's home, its worker's name, and how many workers share that host."""
        if not address:
            return outcome
        self.home[family(part)] = address
        warnings = outcome.warnings
        host = self.workers.get(address, {}).get("host")
        count = self._host_workers(address)
        if count > 1 and host not in self.shared:
            self.shared.add(host)
            warnings += (f"{count} Dask workers share host {host}: their cells ran side by side, each on its own "
                         "CPUs where there were enough (column host_workers)",)
        return replace(outcome, worker=f"{outcome.worker}@{address}" if outcome.worker else "",
                       host_workers=count, warnings=warnings)

    def finish(self) -> dict:
        """Drop what is in flight, stop every Dask worker's worker processes (their last drift times)."""
        if self.client is None:
            return {}
        finals = {}
        try:
            self.client.cancel(list(self.futures))
            self.futures.clear()
            self.running.clear()
            stopped = self.client.run(_stop_pool)
            finals = {f"{name}@{address}": final for address, found in stopped.items() for name, final in found.items()}
            self.client.unregister_worker_plugin(PLUGIN)
            self.client.run_on_scheduler(_allowed_failures, self.allowed_failures)
        except Exception as exc:  # a worker gone meanwhile: the sweep's rows are written, so say it and go on
            print(f"nablabench: warning: stopping the Dask workers' processes: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
        return finals

    def close(self) -> None:
        """Disconnect, and stop the LocalCluster this started (a running cluster stays up)."""
        if self.client is None:
            return
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = None
