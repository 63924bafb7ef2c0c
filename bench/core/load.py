"""How busy the machine was while a sweep ran: other processes' CPU use and hypervisor steal per
cell, load average, CPU frequency and GPU throttling in the metadata.

A noisy cell on a busy machine is the machine's fault, not the library's; the report says which.
"""
from __future__ import annotations

import os
import subprocess
import time

import psutil

BUSY_CPUS = 0.25  # other processes or steal above this many CPUs on average: the run was busy


class LoadMonitor:
    """CPU seconds the system spent outside this process tree, and stolen by the hypervisor,
    between `start()` and `stop()`, in CPUs (seconds per second of wall time)."""

    def __init__(self):
        self.me = psutil.Process(os.getpid())

    def _ours(self) -> float:
        total = 0.0
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:  # a worker that ended in between
                pass
        return total

    def start(self) -> tuple:
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "steal", 0.0)
        return time.monotonic(), busy, self._ours(), getattr(times, "steal", 0.0)

    def stop(self, started: tuple) -> dict[str, float]:
        wall0, busy0, ours0, steal0 = started
        wall, busy, ours, steal = self.start()
        elapsed = max(wall - wall0, 1e-9)
        return {"load_other_cpus": max((busy - busy0) - (ours - ours0), 0.0) / elapsed,
                "load_steal_cpus": max(steal - steal0, 0.0) / elapsed}


def snapshot() -> dict:
    """Load average, CPU frequency and GPU clock events now, for the metadata."""
    facts: dict = {"loadavg": list(os.getloadavg())}
    try:
        freq = psutil.cpu_freq()
        facts["cpu_mhz"] = None if freq is None else round(freq.current)
    except (OSError, NotImplementedError):
        facts["cpu_mhz"] = None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=clocks_event_reasons.active,temperature.gpu,clocks.sm",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        if done.returncode == 0:
            facts["gpu_clock_events"] = done.stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    return facts
