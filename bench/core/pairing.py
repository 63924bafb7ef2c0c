"""Which analytic variant an autodiff variant is divided by, and how wide a cell's intervals are:
plain Python, read by the sweep's stopping rule between parts and by the analysis alike."""
from __future__ import annotations

import math

from bench.core.intervals import within_pass_se


def _declared(backend: str, field: str, variant: str) -> str | None:
    """What the record of `backend` (which may carry an A/B run's side: torch@base) declares for
    `variant` in its `field` (pairs, versus); None where the backend is not installed here or
    declares nothing: never a guess."""
    import backends

    try:
        return getattr(backends.get(backend.rsplit("@", 1)[0]), field).get(variant)
    except ValueError:
        return None


def twin(backend: str, variant: str) -> str | None:
    """The analytic variant an autodiff variant of `backend` is divided by: the one the backend's
    record declares (backends.Backend.pairs), of the same execution regime (eager with eager,
    compiled with compiled: TensorFlow's `tape` with `eager`, `tape-xla` with `xla`). None where it
    declares none: such a variant gets no ratio, never a guessed one."""
    return _declared(backend, "pairs", variant)


def rival(backend: str, variant: str) -> str | None:
    """The autodiff variant of the same backend that an autodiff variant is measured against, where
    the backend's record declares one (backends.Backend.versus: Enzyme's gradient against JAX's own)."""
    return _declared(backend, "versus", variant)


def pass_id(run_id, part) -> str:
    """A pass of one run: two runs' pass p are two passes, never one."""
    return f"{'' if run_id is None else run_id}/{int(part or 0)}"


def read_by(timed: list[dict]) -> list[tuple[list, list]]:
    """The series a cell is read by, each as (pass ids, values) of its samples: its autodiff variants'
    paired ratios (`twin`, per round), or, in a cell without autodiff (numpy's formulas), its variants'
    times. `timed`: the cell's ok samples as dicts (backend, mode, variant, part, repeat, time_s,
    run_id, machine); plain Python, as it runs between every two parts."""
    series: dict[tuple, dict] = {}  # (machine, mode, variant) -> {(run_id, repeat): (pass id, time)}
    backend = timed[0]["backend"] if timed else ""
    for row in timed:
        series.setdefault((row.get("machine") or "", row["mode"], row["variant"]), {})[
            row.get("run_id"), row["repeat"]] = (pass_id(row.get("run_id"), row["part"]), row["time_s"])
    ratios, times = [], []
    for (machine, mode, variant), samples in series.items():
        times.append(tuple(map(list, zip(*samples.values()))))
        other = series.get((machine, "analytic", twin(backend, variant))) if mode == "autodiff" else None
        if other is None:
            continue
        pairs = [(part, t / other[k][1]) for k, (part, t) in samples.items() if k in other]
        ratios.append(tuple(map(list, zip(*pairs))) if pairs else ([], []))
    return ratios or times


def pilot_spread(timed: list[dict]) -> float:
    """The widest standard error, within its first pass, of a series the cell is read by: the
    spread of that pass's rounds about their median (bench.core.intervals.within_pass_se;
    bench.core.stopping plans a cell's passes from it); 0 where the first pass has fewer than two
    rounds of a series."""

    def order(pass_):  # the first part, whichever run (a resumed run has an id of its own) took it
        run, part = pass_.rsplit("/", 1)
        return int(part), run

    spreads = []
    for parts, values in read_by(timed):
        pilot = min(parts, key=order, default=None)
        se = within_pass_se([v for p, v in zip(parts, values) if p == pilot])
        spreads.append(se if math.isfinite(se) else 0.0)
    return max(spreads, default=0.0)
