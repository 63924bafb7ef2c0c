"""What a measuring process sets before any framework starts: no GPU for a CPU worker, its threads and CPUs;
and the parent's `__main__` hidden while one is spawned."""
from __future__ import annotations

import contextlib
import os
import sys
import types


def hide_gpus() -> None:
    # A CPU worker must not start CUDA: a context costs memory and start-up time, and a CUDA-aware
    # library then synchronises the device after CPU work. Set before any framework is imported.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["JAX_PLATFORMS"] = "cpu"


def limit_threads(threads: int, slot: int = 0) -> None:
    """The thread pools' sizes (before numpy, torch or jax start them) and the CPUs (pin_cpus)."""
    thread_variables(threads)
    pin_cpus(threads, slot)


def thread_variables(threads: int) -> None:
    """What the frameworks read when they load: their thread pools' sizes, and JAX's GPU memory."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    # JAX takes 75% of a GPU's memory at start unless told otherwise; the torch worker shares the GPU.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def pin_cpus(threads: int, slot: int = 0) -> None:
    """Keep this process on `threads` CPUs, before any framework makes its pools (JAX sizes its pool
    from the CPU affinity when it makes its client, not when it is imported). The last CPUs: the first
    takes more of the system's interrupts and housekeeping (measured: ratios reproduced better on the
    last of this machine's two CPUs than on the first). Slot i (one of several Dask workers on a host,
    bench.sweep.cluster) takes the i-th slice from the end, counting round again where the CPUs run out."""
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        end = len(cpus) - (slot % (len(cpus) // threads)) * threads
        os.sched_setaffinity(0, cpus[end - threads:end])


@contextlib.contextmanager
def main_module_hidden():
    """While a worker is spawned: multiprocessing's spawn runs the parent's `__main__` again in each
    child (a user's script, unguarded, would start a sweep in every worker). A worker needs nothing
    from it: problems made there travel pickled by value (problems.define)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
