"""Each pytest-xdist worker on its own CPUs, set when conftest imports this, before any framework
sizes a thread pool. The sweeps' bench workers pin themselves to the last CPUs of what they are
given (bench.sweep.workers), so with the whole machine both xdist workers' sweeps ran on the last CPU
while the first idled."""
from __future__ import annotations

import os

MACHINE_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _own_share() -> None:
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker and count and len(MACHINE_CPUS) >= int(count):
        share, index = len(MACHINE_CPUS) // int(count), int(worker.removeprefix("gw"))
        os.sched_setaffinity(0, MACHINE_CPUS[index * share:(index + 1) * share])


_own_share()
