"""The progress display's time left: a range, low to high, from what is known of the work to come.

Two things make a sweep's length unknown at its start. Which optional parts run: a cell takes its
floor of passes, then as many more as its first pass's spread plans (bench.core.stopping), so a
cell's passes are known once its first part has run, and before that only as a share of the cells
of its task that planned so far. And what a part costs: priced by the best of what is known of it,
each price with how far it may be off (SPREAD, a factor either way):

- `history`: what this part of this cell took in the previous run of the same options on this
  machine (its metadata's `parts_log`), times how fast this run goes against that one, read
  from the parts both ran lately;
- `repeated`: what this cell's last part after its first took, in this run;
- `measured`: from its first part: one round's timed seconds (from its samples) times its rounds, plus
  its first part's seconds beyond what it timed (the instance built, checks, compiles) times the share
  of that which later parts of its task paid again so far (the instance is built again each part);
- `model`: the cost model `estimated_seconds`, scaled by how long the parts it priced so far took,
  per task, backend, device and first part or not; as its task's parts, where none of those ran;
  unscaled before any.

The range adds every part's low and high prices, with the optional parts of unseen cells at the low
and high ends of their share's 90% interval, so that it holds the truth where the prices' errors go
the same way; `scripts/eta_accuracy.py` measures how often it held it.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import Counter, deque
from pathlib import Path

from bench.core import defaults
from bench.core.cell import Cell
from bench.core.schema import KEY, family

ETA_TRACE_S = 1.0  # the metadata's eta_trace: what the display said, every this many seconds (its accuracy)
FINISH_S = 1.0  # what a sweep takes after its last part (its workers' drift read again, and stopped), before any run

# A matvec streams at about this share of the machine's measured bandwidth (the fastest of STREAM
# Copy, Add and a read-only pass, bench.measure.roofline): here A @ x at n = 10^4 ran at 26.7 GB/s against 38.0.
MATVEC_SHARE = 0.7

# How far a price may be off, a factor either way, by what it rests on: a previous run's time drifts
# with the machine (10% within minutes here); a cell's own part varies part to part; the cost model
# is off by more the less it has been calibrated on parts like the one priced.
SPREAD = {"history": 1.15, "repeated": 1.25, "measured": 1.35, "model": 1.5, "model-task": 2.0, "model-prior": 3.0,
          # the optional passes cells not yet started take, as the previous run's cells took them: two
          # runs of the default preset spent 103 s and 88 s in them, on the same cell and pass in 712 of ~900
          "previous-plan": 1.3,
          # the sweep's own seconds between parts (its rows written, the next part decided): 10 ms a part here
          "between": 1.5}
SHARE_LEVEL = 0.9  # the interval of the share of an unseen cell's optional parts that run
BETWEEN_RECORDS = 200  # the records whose seconds between parts give the rate
SPEED_WINDOW_S = 120.0  # a run's speed against its history: from its latest parts worth this many seconds then
SPEED_LEAST_S = 5.0  # ... of the part's own kind, or of all kinds where those are worth less than this


def estimated_seconds(cell: Cell, bandwidth_GBps: float = 20.0 / MATVEC_SHARE) -> float:
    """A rough cost model of one part of a cell (the ETA's prior; `Eta` corrects it as parts finish).

    Two variants, each paying a fixed cost (in the first part: warm-up, calibration, first call,
    compile; later: a re-warm) and its rounds; calls priced as memory-bound matvecs at
    MATVEC_SHARE of the run's measured bandwidth, plus ~20 us of dispatch.
    """
    matvec = 8 * cell.n * cell.n / (MATVEC_SHARE * bandwidth_GBps * 1e9)
    first = cell.part == 0
    if cell.task == "solve":
        return 2 * (cell.rounds + 0.2) * 40 * (2 * matvec + 5e-5) + (0.3 if first else 0.05)
    per_call = {"f": matvec, "hess": 2 * cell.n * 2 * matvec}.get(cell.derivative, 2 * matvec) + 2e-5
    fixed = 0.15 + 3 * per_call if first else 0.01 + max(cell.min_sample_s, per_call)
    return 2 * (fixed + cell.rounds * max(cell.min_sample_s, per_call))


def key_text(key: tuple) -> str:
    """A cell key as the metadata's `parts_log` names it."""
    return "|".join(map(str, key))


def _keyed_now(text: str) -> str:
    """A parts log's cell key as the key is now: a log recorded before the key held the dtype (the shipped
    logs among them) names float64 cells, whose keys gain "float64" in its place."""
    fields = text.split("|")
    if len(fields) == len(KEY) - 1:
        fields.insert(KEY.index("dtype"), "float64")
    return "|".join(fields)


BASELINES = Path(__file__).resolve().parents[2] / "baselines"  # eta-<machine fingerprint>.json: shipped parts logs


def baseline_path(machine: str, folder: Path = BASELINES) -> Path:
    return Path(folder) / f"eta-{machine}.json"


def previous_run(out: Path, request: dict | None, machine: str | None,
                 folder: Path = BASELINES) -> tuple[dict[tuple[str, int], float], float, str]:
    """(cell key text, part) -> seconds, the seconds it took after its last part, and where it came from:
    the latest run beside `out` (a `.meta.json` in its folder) made with the same options (`request`) on
    the same machine class; else the run of the same options this machine class's shipped parts log holds
    (baselines/eta-<fingerprint>.json, `record_baseline`), so that a preset's first run on a fresh clone is
    priced as its second is; ({}, FINISH_S, "") where there is neither."""
    if not request or not machine:
        return {}, FINISH_S, ""
    latest, found, finish, source = "", {}, FINISH_S, ""
    for path in (out.parent.glob("*.meta.json") if out.parent.is_dir() else ()):
        try:
            runs = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for meta in runs.values() if isinstance(runs, dict) else ():
            if (isinstance(meta, dict) and meta.get("parts_log") and meta.get("request") == request
                    and meta.get("machine_fingerprint") == machine and (meta.get("finished") or "") > latest):
                latest, source = meta["finished"], str(path)
                found = {(_keyed_now(key), part): s for key, part, s, _ in meta["parts_log"] if s is not None}
                finish = max(meta["eta_trace"][-1][0] - meta["parts_log"][-1][3], 0.0)
    if found:
        return found, finish, source
    shipped = baseline_path(machine, folder)
    try:
        runs = json.loads(shipped.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return {}, FINISH_S, ""
    for run in runs:
        if run.get("request") == request:
            return {(_keyed_now(key), part): s for key, part, s in run["parts"]}, run["finish_s"], str(shipped)
    return {}, FINISH_S, ""


def record_baseline(metas: list[Path], folder: Path = BASELINES) -> Path:
    """Ship the parts logs of finished runs (their `.meta.json`) as their machine class's: one entry per
    set of options, the latest run's; the file's other entries are kept."""
    found: dict[str, dict] = {}
    machine = None
    for path in metas:
        for meta in json.loads(Path(path).read_text()).values():
            if not (meta.get("parts_log") and meta.get("finished")):
                continue
            if machine not in (None, meta["machine_fingerprint"]):
                raise ValueError(f"{path}: runs of two machine classes; record one class at a time")
            machine = meta["machine_fingerprint"]
            key = json.dumps(meta["request"], sort_keys=True)
            if key not in found or meta["finished"] > found[key]["finished"]:
                found[key] = {"request": meta["request"], "finished": meta["finished"],
                              "machine": meta.get("machine", ""), "from": Path(path).name,
                              "finish_s": round(max(meta["eta_trace"][-1][0] - meta["parts_log"][-1][3], 0.0), 2),
                              "parts": [[key_, part, round(s, 3)] for key_, part, s, _ in meta["parts_log"]
                                        if s is not None]}
    if machine is None:
        raise ValueError("no finished run with a parts log among " + ", ".join(map(str, metas)))
    path = baseline_path(machine, folder)
    kept = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [r for r in kept if json.dumps(r["request"], sort_keys=True) not in found] + list(found.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, separators=(",", ":")) + "\n")
    return path


def describe_left(low: float, high: float) -> str:
    """The time left as the display says it: a range, or one number where the range is narrow."""
    def minutes(seconds: float, up: bool) -> int:
        return max(1, int(-(-seconds // 60)) if up else int(seconds // 60))

    if high < 90:
        return f"about {high:.0f} s left" if high - low < 10 else f"{low:.0f}-{high:.0f} s left"
    if high <= 1.15 * low:
        return f"about {round((low + high) / 120):.0f} min left"
    return f"{minutes(low, False)}-{minutes(high, True)} min left"


class Eta:
    """Seconds left in a sweep, as (low, likely, high); see the module's docstring."""

    def __init__(self, parts: list[Cell], bandwidth_GBps: float | None = None,
                 history: dict[tuple[str, int], float] | None = None, started_s: float = 0.0,
                 finish_s: float = FINISH_S):
        self.bandwidth_GBps = bandwidth_GBps  # the run's measured roof, for the cost model
        self.history = history or {}
        self.started_s = started_s  # the sweep's clock when its first part began
        self.finish_s = finish_s  # what it takes after its last part
        self.clock_s = started_s  # the sweep's clock at the last part recorded
        # the sweep's own seconds at each of its latest records, beyond the part's (rows written, the next
        # part decided, a worker started): their median is the rate, which a worker's start does not move
        self.between: deque[float] = deque(maxlen=BETWEEN_RECORDS)
        self.left: Counter = Counter()  # (category, state) -> price of the parts not yet done
        self.count: Counter = Counter()  # (category, state) -> how many parts that is
        self.price: dict[tuple, tuple] = {}  # (cell key, side, part) -> (category, state, price) while pending
        self.pending: dict[tuple, list[Cell]] = {}  # cell key -> its parts not yet done
        self.planned: dict[tuple, int] = {}  # cell key -> the passes it takes, once its first part has run
        self.round_s: dict[tuple, float] = {}  # cell key -> one round's timed seconds, from its first part
        self.first_overhead: dict[tuple, float] = {}  # cell key -> its first part's seconds beyond what it timed
        self.overhead: Counter = Counter()  # (category, state) -> first-part overheads of its pending parts
        # task -> first-part overheads of the later parts done, and what those parts took beyond their timing
        self.overhead_then: Counter = Counter()
        self.overhead_again: Counter = Counter()
        self.last_s: dict[tuple, float] = {}  # cell key -> seconds its last later part took
        self.actual: Counter = Counter()  # category -> seconds of its parts done, their prices, their count
        self.estimated: Counter = Counter()
        self.done_count: Counter = Counter()
        # category -> (seconds then, seconds now) of the parts done that were priced by the previous run
        self.against_history: dict[tuple, list[tuple[float, float]]] = {}
        self.against_history_all: list[tuple[float, float]] = []  # the same, of every category, in order
        for part in parts:
            self.pending.setdefault(part.key, []).append(part)
            self._add(part)

    # pricing

    def _history_s(self, part: Cell) -> float | None:
        """What the previous run's same part took; for an optional part it did not run, its cell's
        other parts after the first (what this one would take)."""
        key = key_text(part.key)
        if (key, part.part) in self.history:
            return self.history[key, part.part]
        if part.part > 0:
            later = [s for p in range(1, part.max_passes) if (s := self.history.get((key, p))) is not None]
            if later:
                return sum(later) / len(later)
        return None

    def _category_price(self, part: Cell) -> tuple[tuple, float, float]:
        then = self._history_s(part) if not part.side else None
        if then is not None:
            return ("history", part.task, part.part == 0), then, 0.0
        if part.part > 0 and part.key in self.last_s:
            return ("repeated", part.task), self.last_s[part.key], 0.0
        measured = self.round_s.get(part.key)
        if part.part > 0 and measured is not None:
            rewarm = 1.0 if part.task == "eval" else 0.05
            return ("measured", part.task), (part.rounds + rewarm) * measured, self.first_overhead.get(part.key, 0.0)
        model = estimated_seconds(part, self.bandwidth_GBps) if self.bandwidth_GBps else estimated_seconds(part)
        return ("model", part.task, part.backend, part.device, part.part == 0), model, 0.0

    def _state(self, part: Cell) -> tuple | None:
        """Whether the part runs: "runs" (within its cell's floor or plan), None (past its plan: it
        does not), or, optional and its cell's plan not yet known: ("previous",) or None where the
        previous run planned the cell (it ran the part, or not), else ("unseen", task, part)."""
        if part.key in self.planned:
            return ("runs",) if part.part < self.planned[part.key] else None
        if part.part < part.passes:
            return ("runs",)
        if (key_text(part.key), 0) in self.history:  # as the previous run planned this cell
            return ("previous",) if (key_text(part.key), part.part) in self.history else None
        return ("unseen", part.task, part.part)

    def _add(self, part: Cell) -> None:
        category, price, overhead = self._category_price(part)
        state = self._state(part)
        if state is None or (state[0] == "unseen" and category[0] == "model" and price > defaults.CHEAP_S):
            price = overhead = 0.0  # past its plan; or, by the model, too costly for a pass beyond its floor
        self.price[part.key, part.side, part.part] = category, state, price, overhead
        self.left[category, state] += price
        self.overhead[category, state] += overhead
        self.count[category, state] += 1

    def _remove(self, part: Cell) -> tuple[tuple, float, float]:
        category, state, price, overhead = self.price.pop((part.key, part.side, part.part))
        self.left[category, state] -= price
        self.overhead[category, state] -= overhead
        self.count[category, state] -= 1
        return category, price, overhead

    def _reprice(self, key: tuple) -> None:
        for later in self.pending.get(key, []):
            self._remove(later)
            self._add(later)

    # learning

    def done(self, part: Cell, seconds: float | None, rows: list[dict] = (), planned: int | None = None,
             spent_s: float | None = None) -> None:
        """A part finished in `seconds` with `rows`, or was decided without running (None: nothing to
        learn from its time). `planned`: the passes its cell takes, as the stopping rule now reads
        its rows (bench.sweep.runner.passes_taken). `spent_s`: the sweep's clock as it is recorded."""
        category, price, overhead = self._remove(part)
        self.pending[part.key] = [p for p in self.pending[part.key] if p.part != part.part]
        if spent_s is not None:
            self.between.append(max(spent_s - self.clock_s - (seconds or 0.0), 0.0))
            self.clock_s = spent_s
        timed: dict[tuple, list] = {}
        for r in rows:
            if r["status"] == "ok" and r.get("time_s") is not None:
                timed.setdefault((r["mode"], r["variant"]), []).append(r["time_s"] * (r.get("inner_loops") or 1))
        timed_s = sum(map(sum, timed.values()))
        if seconds is not None and price > 0:  # a price zeroed says nothing of what it rests on
            self.actual[category] += seconds
            self.estimated[category] += price
            self.done_count[category] += 1
            if category[0] == "history":
                self.against_history.setdefault(category, []).append((price, seconds))
                self.against_history_all.append((price, seconds))
            if category[0] == "measured" and overhead > 0:
                self.overhead_then[part.task] += overhead
                self.overhead_again[part.task] += max(seconds - timed_s, 0.0)
        changed = False
        if timed and part.key not in self.round_s:  # the cell's one round, from its own samples
            self.round_s[part.key] = sum(sorted(t)[len(t) // 2] for t in timed.values())
            if part.part == 0 and seconds is not None:
                self.first_overhead[part.key] = max(seconds - timed_s, 0.0)
            changed = True
        if part.part > 0 and seconds is not None:  # and what a later part of it takes
            self.last_s[part.key] = seconds
            changed = True
        if planned is not None and self.planned.get(part.key) != planned:
            self.planned[part.key] = planned
            changed = True
        if changed:
            self._reprice(part.key)

    def blocked(self, cell: Cell) -> None:
        """A failure at `cell`'s size decides its family's larger sizes without running them."""
        for key, pending in self.pending.items():
            if pending and family(pending[0]) == family(cell) and pending[0].n > cell.n:
                self.planned[key] = 0
                self._reprice(key)

    def _speed(self, category: tuple) -> float:
        """This run's seconds per second of the previous run, over its latest parts of this category
        (task, first part or not: the two go apart by 10% between runs) priced from it; over all such
        parts where too few of this category have run."""
        def ratio(pairs) -> tuple[float, float]:
            then = now = 0.0
            for price, seconds in reversed(pairs):
                then, now = then + price, now + seconds
                if then >= SPEED_WINDOW_S:
                    break
            return then, now

        then, now = ratio(self.against_history.get(category, []))
        if then < SPEED_LEAST_S:
            then, now = ratio(self.against_history_all)
        return now / then if then > 0.5 else 1.0

    def _scale(self, category: tuple) -> tuple[float, str]:
        """The model's prices: actual / price for this category, else for its task and first part or
        not over the backends (solve and eval are priced by different models), else for its task
        over both (later parts, before any ran, as the first parts did), else the price as it is;
        with the SPREAD it has."""
        if self.estimated[category] > 1.0:
            return self.actual[category] / self.estimated[category], "model"
        for same_part in (True, False):
            alike = [c for c in self.estimated if c[0] == "model" and c[1] == category[1]
                     and (c[-1] == category[-1] or not same_part)]
            estimated = sum(self.estimated[c] for c in alike)
            if estimated > 1.0:
                return sum(self.actual[c] for c in alike) / estimated, "model-task"
        return 1.0, "model-prior"

    def _again(self, task: str) -> tuple[float, str]:
        """The share of a first part's overhead that a later part of `task` pays again, as those done
        so far paid it; a half, as far off as the model, before any."""
        if self.overhead_then[task] > 1.0:
            return self.overhead_again[task] / self.overhead_then[task], "measured"
        return 0.5, "model-prior"

    def shares(self, task: str, part: int) -> tuple[float, float, float]:
        """The share of optional parts number `part` of `task` that run, among the cells whose plan is
        known (low, likely, high: the Jeffreys interval at SHARE_LEVEL); (0, 0.5, 1) before any."""
        from scipy.stats import beta

        seen = [p for key, p in self.planned.items() if key[0] == task]
        if not seen:
            return 0.0, 0.5, 1.0
        runs = sum(p > part for p in seen)
        a, b = runs + 0.5, len(seen) - runs + 0.5
        tail = (1 - SHARE_LEVEL) / 2
        low = float(beta.ppf(tail, a, b)) if runs else 0.0
        high = float(beta.ppf(1 - tail, a, b)) if runs < len(seen) else 1.0
        return low, a / (a + b), high

    def seconds_left(self) -> tuple[float, float, float]:
        """(low, likely, high) seconds of work left, on one worker, with what the sweep spends between
        parts (its median per record lately, times the parts to come) and after the last."""
        spread = SPREAD["history" if self.history else "model-prior"]
        low, likely, high = self.finish_s / spread, self.finish_s, self.finish_s * spread
        if len(self.between) >= 20:
            between = statistics.median(self.between) * len(self.price)
            low, likely, high = (low + between / SPREAD["between"], likely + between,
                                 high + between * SPREAD["between"])
        shares: dict[tuple, tuple] = {}
        for (category, state), left in self.left.items():
            if left <= 0 or state is None:
                continue
            if category[0] == "history":
                priced = [(left * self._speed(category), SPREAD["history"])]
            elif category[0] == "repeated":
                priced = [(left, SPREAD["repeated"])]
            elif category[0] == "measured":  # what it times, and what it pays again of its first part's overhead
                share, basis = self._again(category[1])
                priced = [(left, SPREAD["measured"]), (share * self.overhead[category, state], SPREAD[basis])]
            else:
                scale, basis = self._scale(category)
                priced = [(left * scale, SPREAD[basis])]
            if state[0] == "previous":  # one run's plans add up to another's within SPREAD["previous-plan"]:
                # an error apart from the price's (the pilots' draws, not the machine), so the two add in
                # quadrature on the log scale
                plan = math.log(SPREAD["previous-plan"])
                priced = [(seconds, math.exp(math.hypot(math.log(spread), plan))) for seconds, spread in priced]
                share_low = share = share_high = 1.0
            elif state[0] == "unseen":
                if state[1:] not in shares:
                    shares[state[1:]] = self.shares(*state[1:])
                share_low, share, share_high = shares[state[1:]]
            else:
                share_low = share = share_high = 1.0
            for seconds, spread in priced:
                seconds = max(seconds, 0.0)
                low += seconds / spread * share_low
                likely += seconds * share
                high += seconds * spread * share_high
        return low, likely, high

    def cells_taking(self, part: int) -> int:
        """How many cells are planned (so far) to take pass `part` + 1 beyond their floor."""
        return sum(p > part for p in self.planned.values())
