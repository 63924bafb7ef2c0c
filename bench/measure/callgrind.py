"""Counting work under valgrind's callgrind: instructions (and, with its cache simulation, an
estimate of cycles) executed by chosen calls, the same in every process on the same machine and
library versions, where wall time moves by 10% with the machine.

A worker runs as `valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no python ...`
(`command`): imports, checks and compiles run uninstrumented (valgrind's JIT alone, a few times
slower than native), and the worker brackets the calls it counts with callgrind's client requests
(`Client`: start instrumentation, toggle collection on, calls, toggle it off, dump with a label).
Each dump is a file whose totals are the events of exactly those calls (`read_dumps`).

The client requests are the macros of valgrind's own callgrind.h, compiled once into a small
shared library with the system's C compiler and called through ctypes (torch has the same
requests as torch._C._valgrind_toggle, but a numpy or JAX worker must not import torch for them).

What counts cannot see: time spent waiting on memory (an instruction is one whether it hits the
cache or RAM; the cycle estimate models that only roughly), other threads (each thread has its own
collection switch, off at its start, and a toggle switches the calling thread's: a count is of the
worker's main thread, so counted runs take one thread, --threads 1) and GPU work.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "valgrind"  # Debian's (and Homebrew's, Fedora's) package with callgrind and callgrind.h
HEADER = Path("/usr/include/valgrind/callgrind.h")

# The cycle estimate of iai-callgrind and CodSpeed from callgrind's cache simulation (I1, D1, LL):
# L1 hits + 5 x LL hits + 35 x RAM hits.
CYCLES_FORMULA = "L1 hits + 5 x LL hits + 35 x RAM hits (iai-callgrind's estimate)"

_SOURCE = r"""
#include <valgrind/callgrind.h>
int nb_running_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
void nb_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
void nb_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void nb_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }
void nb_zero_stats(void) { CALLGRIND_ZERO_STATS; }
void nb_dump_stats_at(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""


class Unavailable(RuntimeError):
    """valgrind, its callgrind.h or a C compiler is missing; the message names what to install."""


def missing() -> str | None:
    """What instruction counting lacks on this machine, as a sentence naming the package; None if nothing."""
    if shutil.which("valgrind") is None:
        return (f"instruction counts need valgrind (callgrind), which is not installed: install the `{PACKAGE}` "
                f"package (Debian/Ubuntu: apt-get install -y {PACKAGE})")
    if not HEADER.exists():
        return f"instruction counts need valgrind's {HEADER}, which is missing: reinstall the `{PACKAGE}` package"
    if shutil.which("cc") is None:
        return "instruction counts need a C compiler (`cc`) for callgrind's client requests: install `gcc`"
    return None


def command(out_dir: Path, *, cache_sim: bool = False) -> list[str]:
    """The valgrind prefix of a counted worker's command line; its dumps land in `out_dir`."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
            f"--cache-sim={'yes' if cache_sim else 'no'}", "--compress-strings=no",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p", "-q"]


def _library() -> Path:
    """The client-request library, compiled once per source into the user's temporary folder."""
    digest = hashlib.sha1((_SOURCE + HEADER.read_text()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"nablabench-callgrind-{digest}.so"
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "client.c"
            source.write_text(_SOURCE)
            built = Path(tmp) / path.name
            subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(built), str(source)], check=True,
                           capture_output=True, text=True)
            os.replace(built, path)  # atomic: two workers compiling at once both end with a whole file
    return path


class Client:
    """callgrind's client requests, for the process that runs under it."""

    def __init__(self):
        why = missing()
        if why:
            raise Unavailable(why)
        self._lib = ctypes.CDLL(str(_library()))
        self._lib.nb_dump_stats_at.argtypes = [ctypes.c_char_p]
        if not self._lib.nb_running_on_valgrind():
            raise Unavailable("this process is not running under valgrind: counted workers start through "
                              "bench.measure.callgrind.command")

    def start_instrumentation(self) -> None:
        self._lib.nb_start_instrumentation()

    def stop_instrumentation(self) -> None:
        self._lib.nb_stop_instrumentation()

    def toggle_collect(self) -> None:
        self._lib.nb_toggle_collect()

    def zero_stats(self) -> None:
        self._lib.nb_zero_stats()

    def dump(self, label: str) -> None:
        self._lib.nb_dump_stats_at(label.encode())


def read_dump(path: Path) -> tuple[str, dict[str, int]]:
    """(the label it was dumped with, {event: total}) of one callgrind output file."""
    label, events, totals = "", [], []
    with open(path) as f:
        for line in f:
            if line.startswith("desc: Trigger: Client Request: "):
                label = line.split(": ", 3)[-1].rstrip("\n")
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("totals:", "summary:")):
                totals = [int(t) for t in line.split()[1:]]
    # the format leaves trailing zero costs out (a sample whose data stayed in the caches: no LL misses)
    return label, dict(zip(events, totals + [0] * (len(events) - len(totals))))


def read_dumps(out_dir: Path) -> dict[str, dict[str, int]]:
    """{label: events} of every labelled dump in `out_dir` (the file written at exit has no label)."""
    dumps = {}
    for path in sorted(out_dir.glob("callgrind.out.*")):
        label, events = read_dump(path)
        if label:
            dumps[label] = events
    return dumps


def estimated_cycles(events: dict[str, int]) -> int | None:
    """CYCLES_FORMULA from a dump with cache simulation; None without it."""
    needed = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
    if not all(e in events for e in needed):
        return None
    l1_misses = events["I1mr"] + events["D1mr"] + events["D1mw"]
    ram = events["ILmr"] + events["DLmr"] + events["DLmw"]
    l1_hits = events["Ir"] + events["Dr"] + events["Dw"] - l1_misses
    return l1_hits + 5 * (l1_misses - ram) + 35 * ram


if __name__ == "__main__":  # `python -m bench.measure.callgrind`: can this machine count?
    print(missing() or f"callgrind available: {_library()}")
    sys.exit(1 if missing() else 0)
