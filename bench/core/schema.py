"""The results' schema, once: a cell's key, a variant's key, a curve's family, the row statuses and
one way to print a cell. A leaf: it imports neither pandas nor a framework, so the worker, the
storage and the analysis modules all import it and none of them imports another for it.
"""
from __future__ import annotations

from typing import Any

from bench.core import precision

# A cell: the unit a worker runs, a run resumes and a failure blocks the larger sizes of.
KEY = ("task", "problem", "n", "backend", "device", "dtype", "derivative")
# A variant of a cell: what one series of samples measures.
VARIANT_KEY = KEY + ("mode", "variant")
# A cell over its sizes: one curve of a figure, and what a failure at one size blocks.
FAMILY = ("task", "problem", "backend", "device", "dtype", "derivative")

# Every status a row may have, with what it means. A row with another status is refused when written.
STATUSES: dict[str, str] = {
    "ok": "checked against the other mode, then timed",
    "wrong": "the check found a relative error above rtol, or a result of the wrong shape: not timed",
    "nan": "the derivative (or f during a solve) was not finite: not timed",
    "error": "the variant raised; the message says what and where",
    "timeout": "the cell ran past its time budget; its worker was stopped",
    "crashed": "the worker process died (the OOM killer, a segfault)",
    "skipped": "not run, for the reason in the message (a size limit, an earlier failure, nothing to check against)",
    "skipped_memory": "not run: the memory guard estimated more than the free memory allows",
    "not_converged": "gradient descent did not reach eps within max_iter",
    "diverged": "gradient descent's f grew past the divergence bound",
}
OK = "ok"
# After one of these at size n, the larger sizes of the same family are skipped.
BLOCKING = ("timeout", "crashed", "skipped_memory")
# A cell that was `ok` in a baseline and has one of these now is a failure of the gate, whatever its time.
FAILED = ("wrong", "nan", "error", "timeout", "crashed", "not_converged", "diverged")


def key(cell: Any) -> tuple:
    """A cell's key, from a Cell, a results row (itertuples) or a dict."""
    return _fields(cell, KEY)


def family(cell: Any) -> tuple:
    """A cell over its sizes, from a Cell, a results row or a dict."""
    return _fields(cell, FAMILY)


def _fields(cell: Any, names: tuple[str, ...]) -> tuple:
    if isinstance(cell, dict):
        return tuple(cell[name] for name in names)
    return tuple(getattr(cell, name) for name in names)


def check_status(row: dict) -> None:
    """Refuse a row whose status is not one of STATUSES (a typo would otherwise read as a failure)."""
    status = row.get("status")
    if status not in STATUSES:
        raise ValueError(f"Row status `{status}` is not a nablabench status; expected one of: {', '.join(STATUSES)}.")


def label(row: dict, *, machine: bool = False) -> str:
    """One way to print a cell or a variant: 'eval least_squares n=100 torch/cpu autodiff grad backward'.

    `mode` and `variant` are left out where the row has none (a cell); a dtype other than float64 follows
    the device ('torch/cpu float32'); `machine` adds where it ran."""
    dtype = row.get("dtype")
    where = (f"{row['backend']}/{row['device']}" + (f" {dtype}" if dtype and (dtype,) != precision.DEFAULT else "")
             + (f" on {row.get('machine') or '?'}" if machine else ""))
    mode = f" {row['mode']}" if row.get("mode") else ""
    variant = f" {row['variant']}" if row.get("variant") else ""
    return f"{row['task']} {row['problem']} n={row['n']} {where}{mode} {row['derivative']}{variant}"
