"""The eval task inside a worker: every variant checked, then timed in interleaved rounds."""
from __future__ import annotations

import math
import time
from typing import Any, Iterator

import problems

from bench.core import defaults
from bench.core.cell import Cell, base_row
from bench.core.intervals import within_pass_se
from bench.measure.accuracy import precise
from bench.measure.checks import Unchecked, checked_reference, compile_and_call, declared, make_ready, order_rng
from bench.measure.context import Context
from bench.measure.timing import rounds, sample, sample_throughput


def eval_cell(cell: Cell, ctx: Context) -> Iterator[tuple[str, Any]]:
    """Check every variant, then time them all in interleaved rounds.

    Once per cell, in its first part (and again only if its worker was restarted): each variant
    compiled (JAX ahead of time) and called once, its peak memory covering exactly these; then each
    checked against the other mode's first result, and calibrated. A later part re-warms each
    variant with one untimed sample. Then the part's rounds, each taking one sample of every checked
    variant in a fresh seeded random order (`position` records it), so that a ratio within one round
    pairs samples taken moments apart: at least `cell.rounds`, and more, up to `cell.max_rounds`,
    while a variant's within-pass standard error (of its log time) exceeds the target and the
    rounds are cheap. Each round's rows go out as it ends.
    """
    b = ctx.backend
    problem = problems.get(cell.problem)
    _, data, x, v, _, _, _ = ctx.instance(cell)
    args = (x, v, data) if problems.KINDS[cell.derivative].takes_direction else (x, data)
    variants, refused = declared(cell, b, [(mode, variant, fn) for mode in cell.modes for variant, fn in
                                           b.functions(problem, mode).get(cell.derivative, {}).items()])
    if refused:
        yield "rows", refused
    fresh = [(mode, variant, fn) for mode, variant, fn in variants if (cell.key, mode, variant) not in ctx.ready]
    functions = {(mode, variant): fn for mode, variant, fn in variants}
    firsts = {}  # (mode, variant) -> (compiled, compile_s, first call's seconds, peak bytes, result)
    for mode, variant, fn in fresh:
        yield "now", f"compiling and calling {mode}/{variant}"
        ctx.ready[cell.key, mode, variant] = None  # until it is checked and calibrated
        first = compile_and_call(cell, ctx, fn, args, base_row(cell, mode=mode, variant=variant))
        if isinstance(first, dict):
            yield "rows", [first]
        else:
            firsts[mode, variant] = first
    references = {}
    outputs = {key: first[-1] for key, first in firsts.items()}
    gate = precise(cell, ctx, cell.derivative) if firsts else None
    for (mode, variant), first in firsts.items():
        yield "now", f"checking and calibrating {mode}/{variant}"
        if mode not in references:
            try:
                references[mode] = checked_reference(cell, ctx, mode, cell.derivative, outputs)
            except Unchecked as exc:
                references[mode] = exc
        row = base_row(cell, mode=mode, variant=variant)
        if isinstance(references[mode], Unchecked):
            yield "rows", [dict(row, status="skipped", message=str(references[mode]))]
            continue
        failure = make_ready(cell, ctx, (mode, variant), first, references[mode], row, gate)
        if failure is not None:
            yield "rows", [failure]
        elif getattr(functions[mode, variant], "note", ""):
            ctx.ready[cell.key, mode, variant] = ctx.ready[cell.key, mode, variant]._replace(
                note=functions[mode, variant].note)
    del firsts, outputs, references, gate
    timed = {}  # (mode, variant) -> (call, Ready)
    for mode, variant, _ in variants:
        ready = ctx.ready[cell.key, mode, variant]
        if ready is None:
            continue  # failed, declined or unchecked: its row says why, in the part that found it
        call = lambda fn=ready.fn: fn(*args)  # noqa: E731
        if not any(f[:2] == (mode, variant) for f in fresh):  # prepared in an earlier part: a short re-warm
            yield "now", f"re-warming {mode}/{variant}"
            sample(call, b.sync, ready.inner_loops)
        timed[mode, variant] = (call, ready)
    if not timed:
        return
    deadline = time.perf_counter() + cell.time_budget_s / 2
    accelerator = cell.device != "cpu"
    # a pass median whose own error is within the target: more rounds would add little to the interval
    # over passes, whose spread is mostly between passes (bench.core.intervals)
    enough = math.log1p(cell.target)
    times = {key: [] for key in timed}
    spent = 0.0  # seconds of timed rounds in this part so far
    for r, order in rounds(cell.max_rounds, order_rng(cell), list(timed)):
        if r >= cell.rounds and (r < 2 or spent > defaults.CHEAP_S
                                 or all(within_pass_se(t) <= enough for t in times.values())):
            break  # (one round gives no within-pass spread: a part asked for one takes one)
        if r >= 1 and time.perf_counter() > deadline:
            break  # a slow cell keeps the rounds it finished within its budget
        batch = []
        for position, key in enumerate(order):
            call, ready = timed[key]
            yield "now", f"timing {key[0]}/{key[1]}, round {cell.first_round + r}"
            latency = sample(call, b.sync, ready.inner_loops)
            # on a GPU, also the same calls back to back with one synchronisation: throughput
            throughput = sample_throughput(call, b.sync, ready.inner_loops) if accelerator else math.nan
            if ready.compile_s is None:  # a long call, not calibrated: its first call's excess over this one
                ready = ctx.ready[(cell.key, *key)] = ready._replace(compile_s=max(ready.first_s - latency, 0.0))
                timed[key] = (call, ready)
            times[key].append(latency)
            spent += (latency + (throughput if accelerator else 0.0)) * ready.inner_loops
            batch.append(base_row(cell, mode=key[0], variant=key[1], repeat=cell.first_round + r, position=position,
                                  time_s=latency, throughput_s=throughput, inner_loops=ready.inner_loops,
                                  compile_s=ready.compile_s, rel_err=ready.rel_err,
                                  peak_mem_bytes=ready.peak_mem_bytes, message=ready.note, **ready.gate))
        yield "rows", batch
