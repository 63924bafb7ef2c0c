"""Facts about the machine and libraries that every result is tagged with."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

HARNESS_LIBRARIES = ("numpy", "scipy", "array-api-compat", "pandas")  # besides each backend's packages
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """Threads every backend gets unless told otherwise: one CPU is left to the system and the
    harness (a worker's threads then never share a CPU with them), and at most 8.

    Measured: on this 2-CPU machine, workers on one CPU apart from the harness reproduced their
    autodiff/analytic ratios better than workers on both (docs/methodology.md, "Reproducibility"); on a 16-CPU
    GPU box, torch's one matvec at n = 1000 took 8 ms with 16 threads against numpy's 0.03 ms, where
    a pool that large costs more to wake than the call takes. Pass --threads to choose otherwise.
    """
    return max(1, min(cpu_count() - 1, MAX_DEFAULT_THREADS))


def versions() -> dict[str, str | None]:
    import backends

    found = {"python": platform.python_version()}
    for name in dict.fromkeys(HARNESS_LIBRARIES + tuple(p for b in backends.names() for p in backends.get(b).packages)):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> dict[str, str | bool | None]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as nvidia-smi reports them (name, memory, driver); [] where there is none."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [line.split(", ") for line in done.stdout.strip().splitlines() if done.returncode == 0]
    return [dict(zip(("name", "memory", "driver"), row)) for row in rows]


def collect(threads: int) -> dict:
    """Everything but the per-backend facts, which each worker reports for itself."""
    facts = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
        "threads": threads,
        "python_executable": sys.executable,
        "argv": sys.argv,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "thread_env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "versions": versions(),
        "gpus": gpus(),
        **git_commit(),
    }
    facts["machine"] = machine_label(facts)
    facts["machine_fingerprint"] = machine_fingerprint(facts)
    facts["setup_fingerprint"] = setup_fingerprint(facts)
    return facts


def _digest(facts) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def machine_fingerprint(meta: dict) -> str:
    """The hardware a run measured on: CPU model and count, GPU names (not the host name)."""
    return _digest([meta.get("cpu_model"), meta.get("cpu_count"),
                    sorted(g.get("name", "") for g in meta.get("gpus") or [])])


def machine_label(meta: dict) -> str:
    """machine_fingerprint's facts, readable: CPU model and count, then each GPU's name."""
    gpu_names = sorted(g.get("name", "") for g in meta.get("gpus") or [])
    return ", ".join([f"{meta.get('cpu_model')} x{meta.get('cpu_count')}", *gpu_names])


@functools.lru_cache(maxsize=1)
def here() -> dict[str, str]:
    """What every row records of the machine that ran it: host name, and its hardware (machine_label)."""
    return {"host": socket.gethostname(),
            "machine": machine_label({"cpu_model": cpu_model(), "cpu_count": cpu_count(), "gpus": gpus()})}


def setup_fingerprint(meta: dict) -> str:
    """The hardware plus what else sets absolute times: threads, library versions, OpenBLAS settings.

    Two runs with the same setup fingerprint may compare absolute times; others, only ratios.
    """
    return _digest([machine_fingerprint(meta), meta.get("threads"), meta.get("versions"),
                    meta.get("openblas_env")])
