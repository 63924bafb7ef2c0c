"""The tidy results table: schema, appending rows to a CSV, reading CSVs back with pandas."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench.core.schema import check_status

SCHEMA_VERSION = 5  # 2: position, part, throughput_s, ref_*_s, load_*_cpus; 3: host, machine, host_workers;
# 4: grad_calls, hvp_calls, hess_calls; 5: instructions, est_cycles

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
    "dtype": "string",
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
    # --measure instructions (eval, under callgrind: bench.measure.counting): instructions per call, a sample of
    # `inner_loops` calls a row, time_s empty; --measure cycles adds the cache simulation's cycle
    # estimate per call (bench.measure.callgrind.CYCLES_FORMULA)
    "instructions": "float64",
    "est_cycles": "float64",
    "rel_err": "float64",  # analytic vs autodiff at this cell, ||a - b|| / ||b||
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
                 5: ("instructions", "est_cycles")}


class NotResultsError(ValueError):
    pass


class CsvSink:
    """Appends whole rows and flushes them: an interrupted run leaves no partial line."""

    def __init__(self, path: Path, *, append: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self._file = open(self.path, "w" if new else "a", newline="", encoding="utf-8")
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
        # One write call per batch, then flush and fsync: Ctrl-C lands between batches.
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # np.float64 too: repr(float) keeps every digit, no "np.float64(...)"
        return repr(float(value)) if value == value else ""
    return str(value)


def read_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read one or more results CSVs; raises NotResultsError naming what is wrong."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise NotResultsError(f"Results file `{path}` does not exist.")
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
        optional = {c for cols in ADDED_COLUMNS.values() for c in cols}
        missing = [c for c in COLUMNS if c not in header and c not in optional]
        if missing:
            raise NotResultsError(
                f"`{path}` is not a nablabench results CSV: missing columns {', '.join(missing)}.")
        frame = pd.read_csv(path, dtype={k: v for k, v in COLUMNS.items() if v != "boolean"},
                            keep_default_na=False, na_values=[""])
        frame["converged"] = frame["converged"].map({"True": True, "False": False}).astype("boolean")
        for column in COLUMNS:
            if column not in frame:
                frame[column] = pd.Series(None, index=frame.index, dtype=COLUMNS[column])
        frames.append(frame)
    if not frames:
        raise NotResultsError("No results files given.")
    return pd.concat(frames, ignore_index=True)


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
    meta = {}
    for csv_path in csv_paths:
        path = metadata_path(Path(csv_path))
        if path.exists():
            meta.update(json.loads(path.read_text()))
    return meta
