"""Instruction counts of one eval cell, in a worker that runs under callgrind (bench.measure.callgrind).

The same checks as a timed cell come first (bench.measure.cells: each variant compiled and called once,
then checked against the other mode); a wrong variant is not counted. Then, with instrumentation
started for the cell, each checked variant in a seeded random order: one instrumented call (its
code translated), then COUNT_SAMPLES samples of `calls` calls each, collection on only around
them and the garbage collector off (a collection inside a sample added 10% to one of torch's), less
an empty sample's count (no call: the sample's own cost). A sample's row carries its instructions
per call (and the cache-simulated cycle estimate, where the worker runs with the cache simulation).
Counting needs no interleaving against drift, but the order is seeded anyway, so that a run
repeats exactly.
"""
from __future__ import annotations

import gc
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator

import problems

from bench.core.cell import Cell, base_row
from bench.measure.callgrind import Client, estimated_cycles, read_dump
from bench.measure.checks import Unchecked, check_result, checked_reference, compile_and_call, declared, order_rng
from bench.measure.context import Context

COUNT_SAMPLES = 5  # samples of each variant; its count is their median (one may hold a rare slow path)
SAMPLE_INSTRUCTIONS = 1_000_000  # a sample takes calls until it counts about this many instructions ...
MAX_CALLS = 20  # ... but at most this many calls (a call of 40k instructions: 20 calls)
# Uninstrumented calls of a variant once it is checked, WARM_CALLS of them (or WARM_S seconds where they
# are slow): caches, lazy initialisation and the interpreter's specialisation of hot code settle over many
# calls, and where a count settles depends on how warm the code is. Torch's logistic gradient at n = 100
# counted 144,900 instructions a call after 2 calls and 143,500 after 200 (steady within a process
# either way), and an A/B's sides after 2 differed by up to 1.3% (docs/counts.md). Then one
# instrumented call translates its code before the samples (valgrind retranslates all code when
# instrumentation starts: such a call costs seconds in torch)
WARM_CALLS, WARM_S = 200, 2.0
# an eval cell's budget, counted: valgrind runs a worker's checks and compiles (JAX's XLA) several
# times slower than native, and its counted calls some 50 times slower
COUNT_BUDGET_FACTOR = 5
DUMPS_VARIABLE = "NABLABENCH_CALLGRIND_DIR"  # where callgrind writes this worker's dumps (set by its launcher)

# A test hook: NABLABENCH_PLANT=BACKEND:PROBLEM:N:DERIVATIVE:MODE/VARIANT:PERCENT adds PERCENT% more work
# to one variant, for real: each of its samples makes 100 + PERCENT calls and divides by 100 (the
# gate's detection test; an empty sample's count is taken off every sample, so that a count per call
# does not depend on the calls a sample makes).
PLANT_VARIABLE = "NABLABENCH_PLANT"


def planted_percent(cell: Cell, mode: str, variant: str) -> int:
    for item in filter(None, os.environ.get(PLANT_VARIABLE, "").split(";")):
        backend, problem, n, derivative, which, percent = item.split(":")
        if (backend, problem, int(n), derivative, which) == (cell.backend, cell.problem, cell.n, cell.derivative,
                                                             f"{mode}/{variant}"):
            return int(percent)
    return 0


class Counter:
    """This worker's callgrind: dumps read back as they are written, then deleted."""

    def __init__(self):
        self.client = Client()
        self.folder = Path(os.environ[DUMPS_VARIABLE])
        self.dumps = 0

    def count(self, call, sync, calls: int, label: str) -> dict[str, int]:
        """The events of `calls` calls of `call`, each synchronised, collection on only around them."""
        self.client.toggle_collect()
        try:
            for _ in range(calls):
                sync(call())
        finally:  # a call that raises must not leave collection on for the worker's later samples
            self.client.toggle_collect()
        self.client.dump(label)
        self.dumps += 1
        path = self.folder / f"callgrind.out.{os.getpid()}.{self.dumps}"
        found, events = read_dump(path)
        path.unlink()
        if found != label:
            raise RuntimeError(f"callgrind dump {path} is labelled {found!r}, expected {label!r}")
        return events


_counter: Counter | None = None


def counter() -> Counter:
    global _counter
    if _counter is None:
        _counter = Counter()
    return _counter


def count_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """Check every variant, then count it: ("now", what) before each step, ("rows", ...) as each ends."""
    b = ctx.backend
    counts = counter()
    problem = problems.get(cell.problem)
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    variants, refused = declared(cell, b, [(mode, variant, fn) for mode in cell.modes for variant, fn in
                                           b.functions(problem, mode).get(cell.derivative, {}).items()])
    if refused:
        yield "rows", refused
    firsts = {}
    for mode, variant, fn in variants:
        yield "now", f"compiling and calling {mode}/{variant}"
        first = compile_and_call(cell, ctx, fn, args, base_row(cell, mode=mode, variant=variant))
        if isinstance(first, dict):
            yield "rows", [first]
        else:
            firsts[mode, variant] = first
    outputs = {key: first[-1] for key, first in firsts.items()}
    checked = {}  # (mode, variant) -> (compiled, compile_s, rel_err, peak bytes)
    references = {}
    for (mode, variant), (compiled, compile_s, first_s, peak, out) in firsts.items():
        row = base_row(cell, mode=mode, variant=variant)
        if mode not in references:
            try:
                references[mode] = checked_reference(cell, ctx, mode, cell.derivative, outputs)
            except Unchecked as exc:
                references[mode] = exc
        if isinstance(references[mode], Unchecked):
            yield "rows", [dict(row, status="skipped", message=str(references[mode]).replace("timed", "counted"))]
            continue
        failed = check_result(row, out, references[mode], cell)
        if failed:
            yield "rows", [failed]
            continue
        warm_until = time.perf_counter() + WARM_S
        for _ in range(WARM_CALLS):
            b.sync(compiled(*args))
            if time.perf_counter() > warm_until:
                break
        checked[mode, variant] = (compiled, compile_s, row["rel_err"], peak)
    del firsts, outputs, references
    if not checked:
        return
    order = [list(checked)[i] for i in order_rng(cell).permutation(len(checked))]
    counts.client.start_instrumentation()
    try:
        for position, (mode, variant) in enumerate(order):
            compiled, compile_s, rel_err, peak = checked[mode, variant]
            call = lambda fn=compiled: fn(*args)  # noqa: E731
            yield "now", f"counting {mode}/{variant}"
            b.sync(call())  # instrumented now: its code translated once, outside any sample
            planted = planted_percent(cell, mode, variant)
            gc.collect()
            gc.disable()
            try:
                # what a sample counts beyond its calls (the toggles, the loop, the dump: ~4,000 instructions)
                empty = counts.count(call, b.sync, 0, f"{mode}/{variant} empty")
                probe = counts.count(call, b.sync, 1, f"{mode}/{variant} probe")["Ir"] - empty["Ir"]
                calls = 100 if planted else max(1, min(MAX_CALLS, math.ceil(SAMPLE_INSTRUCTIONS / max(probe, 1))))
                batch = []
                for s in range(COUNT_SAMPLES):
                    events = counts.count(call, b.sync, calls + planted, f"{mode}/{variant} sample {s}")
                    net = {name: value - empty.get(name, 0) for name, value in events.items()}
                    if net["Ir"] <= 0:
                        raise RuntimeError(f"callgrind counted {events['Ir']} instructions in a sample of {calls} "
                                           f"calls, not more than the empty sample's {empty['Ir']}")
                    cycles = estimated_cycles(net)
                    batch.append(base_row(cell, mode=mode, variant=variant, repeat=cell.first_round + s,
                                          position=position, inner_loops=calls, compile_s=compile_s,
                                          rel_err=rel_err, peak_mem_bytes=peak, instructions=net["Ir"] / calls,
                                          est_cycles=None if cycles is None else cycles / calls))
            finally:
                gc.enable()
            yield "rows", batch
    finally:
        counts.client.stop_instrumentation()
