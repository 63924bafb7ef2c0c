"""The run-to-run spread of a machine class: the level of the experiment no single run can see.

Within a run, a cell's passes show how much its numbers move over the minutes the run spans. A
rerun moves them further: the machine changes regime between runs (an eager framework's ratio
moved by 3 to 8% between back-to-back quick runs here while its passes agreed within 2%; JAX's
by under 1%). `python -m bench.reproduce --record` measures that spread per backend, for paired
ratios and for absolute times, from back-to-back runs on this machine class, and stores it in
baselines/spread-<machine fingerprint>.json (commit it, as the CI baselines). Every interval of
a run on that machine class is widened by it (bench.core.intervals, `run_sd`), so that it holds a
rerun's number, not only this run's passes; without such a file, intervals hold the passes only,
and the report says so.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "baselines"
KINDS = ("ratio", "time")


def path_for(fingerprint: str, folder: Path = FOLDER) -> Path:
    return Path(folder) / f"spread-{fingerprint}.json"


@functools.lru_cache(maxsize=None)
def _by_machine(folder: str) -> dict[str, dict]:
    """Every stored spread, by the machine label it was measured on."""
    found = {}
    for path in sorted(Path(folder).glob("spread-*.json")):
        record = json.loads(path.read_text())
        found[record["machine"]] = dict(record, path=str(path))
    return found


def measured(machine: str, folder: Path = FOLDER) -> dict | None:
    """The stored record of a machine class (its label, as results rows give it), or None."""
    return _by_machine(str(folder)).get(machine)


def run_sd(machine: str, backend: str, kind: str, folder: Path = FOLDER) -> float:
    """The run-level spread (log scale) of one backend's paired ratios or times on a machine class; 0
    where none was measured."""
    record = measured(machine, folder)
    return float((record or {}).get(kind, {}).get(backend, 0.0))


def write(record: dict, fingerprint: str, folder: Path = FOLDER) -> Path:
    path = path_for(fingerprint, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    _by_machine.cache_clear()
    return path
