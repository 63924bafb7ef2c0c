"""The run-to-run spread of a machine class: the level of the experiment no single run can see.

Within a run, a cell's passes show how much its numbers move over the minutes the run spans. A
rerun moves them further: the machine changes regime between runs (an eager framework's ratio
moved by 3 to 8% between back-to-back quick runs here while its passes agreed within 2%; JAX's
by under 1%). `python -m bench.reproduce --record` measures that spread from back-to-back runs on
this machine class and stores it in baselines/spread-<machine fingerprint>.json (commit it).

A spread is an entry per what it depends on: the kind of number (paired ratios, absolute times),
the task, the thread count and the backend. It is calibrated on some of the runs and its coverage
is measured on runs that did not set it (held out); it carries its own uncertainty as degrees of
freedom (from a bootstrap over the cells it was calibrated on), which the intervals use
(bench.core.intervals, Satterthwaite's). An entry whose held-out coverage fell short of 95% beyond
chance (`failed_held_out`) is kept in the file and not applied. An interval of a cell with an entry holds a rerun's
estimate (bench.core.intervals: `rerun`); a cell without one, its own run's passes only, and the
report says which cells those are.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "baselines"
KINDS = ("ratio", "time")
COVERAGE = 0.95  # the share of a rerun's changes a spread is calibrated to hold (bench.reproduce)
HELD_OUT_ALPHA = 0.05  # an entry held out below COVERAGE beyond chance at this level is not applied


@dataclass(frozen=True)
class Spread:
    """One entry: the run-level spread (log scale) and its degrees of freedom."""

    sd: float
    df: float = math.inf


def path_for(fingerprint: str, folder: Path = FOLDER) -> Path:
    return Path(folder) / f"spread-{fingerprint}.json"


def failed_held_out(entry: dict) -> bool:
    """Whether an entry's coverage on the runs held out is below COVERAGE beyond chance: a one-sided
    binomial test at HELD_OUT_ALPHA (35 of 39 held is 90% and passes; 50 of 72 is 69% and fails)."""
    from scipy.stats import binomtest

    cells, share = entry.get("held_out_cells") or 0, entry.get("held_out_coverage")
    if not cells or share is None:
        return False
    return binomtest(round(share * cells), cells, COVERAGE, alternative="less").pvalue < HELD_OUT_ALPHA


def _entries(record: dict) -> dict[tuple, Spread]:
    """(kind, task, threads, backend) -> Spread, of the entries that held on the runs held out. A record
    of the first format (one spread per kind and backend, measured on one-thread eval runs, in sample)
    is read as eval at one thread."""
    if "entries" in record:
        return {(e["kind"], e["task"], int(e["threads"]), e["backend"]): Spread(e["sd"], e.get("df") or math.inf)
                for e in record["entries"] if not failed_held_out(e)}
    return {(kind, "eval", 1, backend): Spread(sd) for kind in KINDS for backend, sd in record.get(kind, {}).items()}


@functools.lru_cache(maxsize=None)
def _by_machine(folder: str) -> dict[str, dict]:
    """Every stored spread, by the machine label it was measured on."""
    found = {}
    for path in sorted(Path(folder).glob("spread-*.json")):
        record = json.loads(path.read_text())
        found[record["machine"]] = dict(record, path=str(path), lookup=_entries(record))
    return found


def measured(machine: str, folder: Path = FOLDER) -> dict | None:
    """The stored record of a machine class (its label, as results rows give it), or None."""
    return _by_machine(str(folder)).get(machine)


def lookup(machine: str, backend: str, kind: str, task: str = "eval", threads=1,
           folder: Path = FOLDER) -> Spread | None:
    """The run-level spread of one backend's paired ratios or times, for a task at a thread count, on a
    machine class; None where none was measured for exactly that (the interval then holds the passes only)."""
    record = measured(machine, folder)
    try:
        threads = int(threads)
    except (TypeError, ValueError):
        return None  # a run whose thread count is not known
    return (record or {}).get("lookup", {}).get((kind, task, threads, backend.rsplit("@", 1)[0]))


def write(record: dict, fingerprint: str, folder: Path = FOLDER) -> Path:
    path = path_for(fingerprint, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    _by_machine.cache_clear()
    return path
