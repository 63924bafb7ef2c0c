"""A worker's state: its backend, the instance it keeps converted, and each variant it has prepared."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

import backends
import problems

from bench.core.cell import Cell


class Prepared(NamedTuple):
    """One instance as a backend sees it: data, evaluation point x and direction v, and x0."""

    inst: problems.Instance
    data: dict
    x: Any
    v: Any
    x_np: np.ndarray
    v_np: np.ndarray
    x0: Any


class Ready(NamedTuple):
    """What a variant's first part of a cell measured once, kept by its worker for the later parts:
    they re-warm it briefly and take their rounds, without a second check, compile or calibration."""

    fn: Any  # what is called: the compiled function (JAX), or the variant itself
    inner_loops: int  # calls per sample (eval); 1 for a solve
    compile_s: float | None  # None until known (a framework without AOT: its first call's excess)
    first_s: float  # the first call (eval) or the warm-up run (solve), compile included
    rel_err: float
    peak_mem_bytes: float = math.nan
    note: str = ""  # what the variant says of itself once compiled (`note`: asdex's colours), in its rows' message
    gate: dict = {}  # its check's rtol, and condition and precise_err where measured (bench.measure.checks.gate_fields)


@dataclass
class Context:
    """A worker's state: its backend, the one instance it keeps converted (the last n used), and
    each variant it has prepared (`Ready`, or None where the variant failed: its row is out)."""

    backend: backends.Backend
    cached: dict = field(default_factory=dict)
    ready: dict = field(default_factory=dict)  # (cell key, mode, variant) -> Ready | None

    def instance(self, cell: Cell) -> Prepared:
        key = (cell.problem, cell.n, cell.seed, cell.device, cell.dtype)
        if key not in self.cached:
            self.cached.clear()  # free the previous size's arrays before allocating the next
            inst = in_dtype(problems.get(cell.problem).instance(cell.n, seed=cell.seed), cell.dtype)
            to = lambda a: cache_aligned(self.backend.asarray(a, cell.device))  # noqa: E731
            data = {k: to(v) if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
            x, v = (rounded(a, cell.dtype) for a in evaluation_point(cell.n, cell.seed, cell.problem))
            prepared = Prepared(inst, data, to(x), to(v), x, v, to(inst.x0))
            # Copies to a device (JAX's even on the CPU) are asynchronous: finish them here, so no
            # timed call and no variant's memory peak pays for them.
            self.backend.sync(prepared[1:4] + prepared[6:])
            self.cached[key] = prepared
        return self.cached[key]


def rounded(a, dtype: str):
    """A floating numpy array in `dtype` (the array itself where it is in it already); anything else as it is."""
    if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating) and a.dtype != np.dtype(dtype):
        return a.astype(dtype)
    return a


def in_dtype(inst: problems.Instance, dtype: str) -> problems.Instance:
    """The instance with its floating arrays (data and x0) rounded to `dtype`; its minimum f* (computed on
    first use) and constants are the float64 instance's: a float32 descent is measured against the same f*."""
    if dtype == "float64":
        return inst
    return replace(inst, data={k: rounded(v, dtype) for k, v in inst.data.items()}, x0=rounded(inst.x0, dtype),
                   solve_f_star=lambda: inst.f_star)


ALIGNMENT = 64  # bytes: a cache line, and what torch's and XLA's allocators give their arrays


def cache_aligned(a):
    """A numpy array whose data start on a cache line (a copy where they do not; other arrays as they
    are). malloc gives numpy 16 bytes, so where an array starts within a cache line was decided by
    what the process had allocated before: the same code, run from two folders, timed numpy's
    least-squares gradient at n = 100 5-12% apart, consistently over ten passes of fresh processes."""
    if not isinstance(a, np.ndarray) or a.ctypes.data % ALIGNMENT == 0 or a.nbytes == 0:
        return a
    buffer = np.empty(a.nbytes + ALIGNMENT, dtype=np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    out = buffer[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def evaluation_point(n: int, seed: int, problem: str = "least_squares") -> tuple[np.ndarray, np.ndarray]:
    """The problem's seeded evaluation point and HVP direction (inside its domain)."""
    return problems.get(problem).evaluation_point(n, seed)
