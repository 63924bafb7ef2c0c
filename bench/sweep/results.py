"""The tidy results table: schema, appending rows to a CSV, reading CSVs back with pandas."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench.core.schema import KEY, check_status

SCHEMA_VERSION = 6  # 2: position, part, throughput_s, ref_*_s, load_*_cpus; 3: host, machine, host_workers;
# 4: grad_calls, hvp_calls, hess_calls; 5: instructions, est_cycles; 6: eps, rtol, condition, precise_err

# column -> pandas dtype. One row per measurement: an eval sample or a solve run.
COLUMNS: dict[str, str] = {
    "schema_version": "int64",
    "run_id": "string",
    "timestamp": "string",
    "task": "string",  # eval | solve
    "problem": "string",
    "n": "int64",
    "backend": "string",
    "device": "string",
    "dtype": "string",  # the precision of the data and results: float64 (the default), float32 (--dtypes)
    "mode": "string",  # analytic | autodiff
    "derivative": "string",  # f | grad | hess | hvp for eval; the solver (gd) for solve
    "variant": "string",  # how the framework computes it: jit, backward, fwd-rev, while-loop, ...
    "repeat": "int64",  # the round: sample index (eval) or run index (solve)
    "position": "Int64",  # the variant's place in its round's seeded random order (0 = first)
    "part": "Int64",  # which pass of the sweep took this sample (a cell's rounds are spread over the passes)
    "time_s": "float64",  # per call (eval) or to reach eps (solve); compile time never included
    # eval on a GPU: per call when the same calls run back to back and are synchronised once per
    # sample (throughput); time_s synchronises every call (latency). Empty on the CPU.
    "throughput_s": "float64",
    "inner_loops": "Int64",  # calls per eval sample
    "compile_s": "float64",  # AOT compile (jax) or first call minus steady state (others)
    "iterations": "Int64",  # solve: outer iterations (steps taken) to eps
    # solve: the calls one run made: value_and_grad (the descent's steps, a Newton-type line search's
    # trial points), HVPs (Newton-CG's conjugate-gradient steps), dense Hessians (Newton)
    "grad_calls": "Int64",
    "hvp_calls": "Int64",
    "hess_calls": "Int64",
    "f_final": "float64",
    "gap": "float64",  # f_final - f*
    "converged": "boolean",
    "eps": "float64",  # solve: the target f - f* <= eps, from the run's eps and the dtype (bench.core.precision)
    # --measure instructions (eval, under callgrind: bench.measure.counting): instructions per call, a sample of
    # `inner_loops` calls a row, time_s empty; --measure cycles adds the cache simulation's cycle
    # estimate per call (bench.measure.callgrind.CYCLES_FORMULA)
    "instructions": "float64",
    "est_cycles": "float64",
    "rel_err": "float64",  # analytic vs autodiff at this cell, ||a - b|| / ||b||
    # the gate's tolerance on rel_err: the run's --rtol, or where the accuracy is measured, the larger of it and
    # the one the dtype and the measured condition give (bench.core.precision.gate_rtol)
    "rtol": "float64",
    # where the accuracy is measured (a run with a dtype beside float64; bench.measure.accuracy): how far a
    # relative perturbation of the inputs of one machine epsilon moves the exact derivative, in epsilons; and
    # this variant's relative error against the derivative computed in a higher precision (float64 for
    # float32, long double for float64) on the same rounded inputs
    "condition": "float64",
    "precise_err": "float64",
    # eval: the worker's peak resident memory while the variant compiled and ran once (its first call) minus
    # its resident memory before it; on a GPU, the allocator's peak. A lower bound where an
    # allocator reuses memory it kept from an earlier variant.
    "peak_mem_bytes": "float64",
    # The drift monitor (bench.measure.drift): the reference workload's seconds in this worker just
    # before the cell. It moves with the machine only.
    "ref_numpy_s": "float64",
    "ref_python_s": "float64",
    # The machine's load during the cell (bench.core.load): CPUs used by processes outside this run,
    # and CPUs the hypervisor stole, averaged over the cell's wall time.
    "load_other_cpus": "float64",
    "load_steal_cpus": "float64",
    # Where the cell ran (empty where it was decided without running: a size past a failure or a
    # limit): the host name, its hardware (CPU model and count, GPU names), and how many workers
    # ran cells on that host at the time (1 locally; several Dask workers may share a host).
    "host": "string",
    "machine": "string",
    "host_workers": "Int64",
    "status": "string",  # one of bench.core.schema.STATUSES
    "message": "string",
}
# What a CSV of an older schema may lack: read as missing values.
ADDED_COLUMNS = {2: ("position", "part", "throughput_s", "ref_numpy_s", "ref_python_s", "load_other_cpus",
                     "load_steal_cpus"),
                 3: ("host", "machine", "host_workers"), 4: ("grad_calls", "hvp_calls", "hess_calls"),
                 5: ("instructions", "est_cycles"), 6: ("eps", "rtol", "condition", "precise_err")}


class NotResultsError(ValueError):
    pass


class CsvSink:
    """Appends whole rows and flushes them: an interrupted run leaves no partial line."""

    def __init__(self, path: Path, *, append: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self._file = open(self.path, "wb" if new else "ab", buffering=0)
        if new:
            self._write_text(",".join(COLUMNS) + "\n")

    def write(self, rows: Iterable[dict]) -> None:
        """Append rows; a row with an unknown status is refused before anything is written."""
        rows = list(rows)
        for row in rows:
            check_status(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="raise",
                                lineterminator="\n")
        writer.writerows({k: _cell_text(row.get(k)) for k in COLUMNS} for row in rows)
        self._write_text(buffer.getvalue())

    def _write_text(self, text: str) -> None:
        # A batch (a part of a cell) in one write system call, unbuffered, then fsync: Ctrl-C or a kill
        # lands between batches; only a full disk or the machine's crash can cut one, and a partial last
        # row is then set aside by the next --resume (set_aside_partial_row).
        data = text.encode("utf-8")
        while data:
            data = data[os.write(self._file.fileno(), data):]
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # np.float64 too: repr(float) keeps every digit, no "np.float64(...)"
        return repr(float(value)) if value == value else ""
    return str(value)


def _record_ends(data: bytes) -> list[int]:
    """The offsets of the newlines that end a CSV record: those outside a quoted field. A message may
    hold a newline (an exception's text), which the csv module writes inside quotes; a doubled quote
    inside a field toggles twice, so the quotes before a newline are even exactly where it ends a
    record. (UTF-8 never puts these two bytes inside another character.)"""
    import numpy as np

    buffer = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == ord("\n"))
    quotes = np.flatnonzero(buffer == ord('"'))
    return newlines[np.searchsorted(quotes, newlines) % 2 == 0].tolist()


def _whole_length(data: bytes) -> int:
    """The length of `data`'s whole records, up to and with the newline that ends its last one."""
    ends = _record_ends(data)
    return ends[-1] + 1 if ends else 0


def partial_tail(path: Path) -> int:
    """The bytes after the file's last whole record: a row cut mid-write (a crash or a full disk during a
    write), never a whole row. 0 for a file that ends in a whole row. A newline inside a quoted field
    (a message of several lines) ends no row."""
    data = Path(path).read_bytes()
    return len(data) - _whole_length(data)


# A batch of rows (one part of one cell) is written in one call: the columns it shares.
BATCH = ("run_id", *KEY, "part")


def set_aside_partial_row(path: Path) -> str | None:
    """Cut a write cut short off `path` (before rows are appended to it), keeping its bytes in a side
    file; returns what it did, in words, or None where the file ends in a whole row. The runner writes
    a part of a cell in one call, so the whole rows before a partial one that belong to its part (the
    same BATCH columns, as far as the partial row goes) are set aside too: `--resume` runs that part
    again, whole, instead of keeping some of its rows. Rows are CSV records (a quoted field may hold a
    newline), not lines."""
    data = Path(path).read_bytes()
    whole_length = _whole_length(data)
    cut = len(data) - whole_length
    if not cut:
        return None
    starts = [0] + [end + 1 for end in _record_ends(data)]
    records = [data[a:b - 1].decode("utf-8", errors="replace") for a, b in zip(starts, starts[1:])]
    partial = data[whole_length:].decode("utf-8", errors="replace")

    def fields_of(record: str) -> list[str]:
        return next(csv.reader(io.StringIO(record, newline="")), [])

    header, whole = (fields_of(records[0]), records[1:]) if records else ([], [])
    fields = fields_of(partial)[:-1]  # its last field may be cut short
    batch = [header.index(c) for c in BATCH if c in header]

    def batch_of(record: str) -> list[str | None]:
        row = fields_of(record)
        return [row[i] if i < len(row) else None for i in batch]

    rows = 0
    if whole and all(i >= len(fields) or fields[i] == value for i, value in zip(batch, batch_of(whole[-1]))):
        last = batch_of(whole[-1])
        while rows < len(whole) and batch_of(whole[-1 - rows]) == last:
            rows += 1
    keep = starts[len(records) - rows]  # the bytes of the header and the whole rows kept
    side = path.with_name(path.name + f".partial-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    side.write_bytes(data[keep:])
    with open(path, "rb+") as fh:
        fh.truncate(keep)
        os.fsync(fh.fileno())
    part = f", and the {rows} whole row(s) of its part, which runs again" if rows else ""
    return f"`{path}` ended in a partial row ({cut} bytes, cut mid-write){part}; set aside in `{side}`"


_NOTED: set = set()  # (file, bytes cut) whose partial row this process has named


def read_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read one or more results CSVs; raises NotResultsError naming what is wrong. A partial last row
    (a write cut short) is left out, saying so on stderr."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise NotResultsError(f"Results file `{path}` does not exist.")
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().strip().split(",")
        optional = {c for cols in ADDED_COLUMNS.values() for c in cols}
        missing = [c for c in COLUMNS if c not in header and c not in optional]
        if missing:
            raise NotResultsError(
                f"`{path}` is not a nablabench results CSV: missing columns {', '.join(missing)}.")
        text = path.read_bytes()
        cut = partial_tail(path)
        if cut and (path.resolve(), cut) not in _NOTED:  # said once, however often a command reads it
            _NOTED.add((path.resolve(), cut))
            print(f"nablabench: note: `{path}` ends in a partial row ({cut} bytes, cut mid-write): left out",
                  file=sys.stderr)
            text = text[:-cut]
        try:
            dtypes = {k: "string" if v == "boolean" else v for k, v in COLUMNS.items()}
            frame = pd.read_csv(io.BytesIO(text), dtype=dtypes, keep_default_na=False, na_values=[""])
        except (ValueError, pd.errors.ParserError) as exc:  # a row of other columns, a value of another type
            said = str(exc).strip().rstrip(".")
            raise NotResultsError(f"`{path}` is not a readable nablabench results CSV: {said}.") from None
        # read as text, then mapped: pandas' own parse of a column of only True/False gives bools
        booleans = {"True": True, "False": False}
        frame["converged"] = frame["converged"].map(booleans, na_action="ignore").astype("boolean")
        for column in COLUMNS:
            if column not in frame:
                frame[column] = pd.Series(None, index=frame.index, dtype=COLUMNS[column])
        frame["threads"] = frame["run_id"].map(_threads_of_runs(path)).astype("Int64")
        frames.append(frame)
    if not frames:
        raise NotResultsError("No results files given.")
    return pd.concat(frames, ignore_index=True)


def _threads_of_runs(csv_path: Path) -> dict:
    """run id -> the thread count its metadata records (the run-to-run spread is keyed by it); none
    where the metadata is missing or not readable (the rows are read without it)."""
    try:
        meta = read_metadata([csv_path])
    except NotResultsError:
        return {}
    return {run: (m.get("settings") or {}).get("threads") for run, m in meta.items() if isinstance(m, dict)}


def metadata_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".meta.json")


def write_metadata(csv_path: Path, run_id: str, meta: dict) -> None:
    """Environment metadata beside the CSV, keyed by run_id (a resumed run adds its own)."""
    path = metadata_path(csv_path)
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[run_id] = meta
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(existing, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def read_metadata(csv_paths: Iterable[Path]) -> dict:
    """run id -> its metadata, from the `.meta.json` beside each CSV (none where there is none);
    NotResultsError where one is not readable JSON."""
    meta = {}
    for csv_path in csv_paths:
        path = metadata_path(Path(csv_path))
        if path.exists():
            try:
                meta.update(json.loads(path.read_text()))
            except (ValueError, UnicodeDecodeError) as exc:
                raise NotResultsError(f"`{path}` is not readable metadata ({exc}); move it aside to read the "
                                      "rows without it.") from None
    return meta


class OutLock:
    """One writer per results file: an OS lock (flock) on `<out>.lock`, which holds the owner's pid, host
    and start. A second run on the same file is refused naming the first; a lock whose process is gone
    is free (the OS released it) and is taken over, saying whose it was."""

    def __init__(self, out: Path):
        self.path = Path(out).with_name(Path(out).name + ".lock")
        self._file = None

    def acquire(self) -> str | None:
        """Take the lock; returns a note where it took over a stale one. Raises OutLocked."""
        import fcntl
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                handle.close()
                raise OutLocked(f"`{self.path.with_suffix('')}` is being written by {owner}; wait for that run to "
                                "end, or write another --out.") from None
            try:  # the file locked is still the one at the path (a release unlinks it before unlocking)
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()  # a lock on a file its owner had just unlinked: lock the path's new one
        handle.seek(0)
        earlier = handle.read().strip()
        handle.seek(0)
        handle.truncate()
        since = datetime.now().isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {since}")
        handle.flush()
        self._file = handle
        return f"took over the lock of {earlier}, which is no longer running" if earlier else None

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing releases the flock
            self._file = None


class OutLocked(RuntimeError):
    """The results file is being written by another run."""
