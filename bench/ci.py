"""CI regression tracking: the `ci` preset against the committed baseline of this machine class.

Baselines live in baselines/ci-<machine fingerprint>.csv (CPU model and count, GPU names: the
machine, not the host). A run gates on the within-run ratios (autodiff / analytic, paired per
round) against a baseline of the same machine class, recorded in another session: at GATE_FACTOR
and GATE_ALPHA, since between sessions the VM's state moves those ratios far more than within one
(the cells slower at SESSION_FACTOR, what one session tells apart, are printed as advisory). It
fails at once on a baseline cell the run did not time (missing, failed, its backend absent); a
slower cell fails it, but where that cell was timed on a busy machine (other work beside it, by
the load monitor) only if a second, fresh run finds it slower too. Against a baseline of another
machine class, only CROSS_MACHINE_FACTOR fails. With no baseline at all, the run is advisory.

Beside it, the count gate: the preset's overhead-bound cells (COUNTED_SIZES) counted under
callgrind (`--measure instructions`, bench.measure.counting) against baselines/counts-<fingerprint>.csv,
failing a variant whose instructions per call grew beyond bench.analysis.counts.COUNT_FACTOR (a few percent,
where the wall-clock gate sees 2x). Without valgrind it says so and gates on wall time alone.

    python -m bench.ci            # both gates, exit 1 on a regression in either
    python -m bench.ci --record   # run both and store them as this machine class's baselines
    python -m bench.ci --gates counts   # the count gate alone (time: the wall-clock gate alone)
"""
from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

from bench.analysis.compare import gate_failures
from bench.cli import main as cli
from bench.core import environment
from bench.core.schema import FAILED, VARIANT_KEY, label
from bench.sweep.results import metadata_path, read_metadata, read_results

# Within one session (scripts/gate_rates.py: 20 quiet runs against a baseline made just before, Intel
# class, 2026-12-01) a gate at 1.1x and alpha 0.1 raised no false alarm and caught a 1.2x slowdown
# planted in one ratio cell in 653 of 720 copies. Between sessions it does not hold: on 2026-12-02 a
# run 10 minutes after its baseline, the VM turned slower, moved 12 of 36 ratio cells by 1.3-1.7x
# (AMD class), and CI on the Intel class failed this gate at 1.1x against the baseline of the day
# before with no timed code changed. The gate is at 2x, beyond what a state was seen to do (docs/ci.md
# has its false alarms and detection). Smaller regressions of the
# overhead-bound cells are the count gate's, at 2%.
SESSION_FACTOR = 1.1
GATE_FACTOR = 2.0
GATE_ALPHA = 0.1  # 90% intervals, and a false discovery rate of 10% across the cells of a comparison
CROSS_MACHINE_FACTOR = 3.0
RUN = ["run", "--preset", "ci", "--threads", "1", "--no-progress", "--overwrite"]
# The counted cells: the preset's at its overhead-bound size (a call's data, 80 kB, in the caches;
# its cost the framework's dispatch and bookkeeping, which instruction counts see whole). They are
# wall-clock gated too: a count cannot see waiting on memory, threads, or a sleep.
COUNTED_SIZES = "100"
COUNT_RUN = ["run", "--preset", "ci", "--n", COUNTED_SIZES, "--measure", "instructions", "--threads", "1",
             "--no-progress", "--overwrite"]


def machine_of(csv: Path) -> str:
    prints = {environment.machine_fingerprint(m) for m in read_metadata([csv]).values()}
    if len(prints) != 1:
        raise SystemExit(f"nablabench ci: {csv} does not come from one machine ({len(prints)} found)")
    return prints.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help="store this run as the baseline of this machine class")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"),
                        help="folder of baselines (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results") / f"ci-{datetime.now():%Y%m%d-%H%M%S}.csv")
    parser.add_argument("--gates", choices=("both", "time", "counts"), default="both",
                        help="the wall-clock ratio gate, the instruction-count gate, or both (default)")
    args = parser.parse_args(argv)
    codes = []
    if args.gates != "counts":
        codes.append(_wall_gate(args))
        if args.record and codes[-1] != 0:  # one class's baselines are recorded together or not at all
            return codes[-1]
    if args.gates != "time":
        codes.append(_count_gate(args))
    return max(codes)


def _wall_gate(args) -> int:
    code = cli(RUN + ["--out", str(args.out)])
    if code != 0:
        return code
    machine = machine_of(args.out)
    baseline = args.baselines / f"ci-{machine}.csv"
    if args.record:
        return _record(args.out, baseline)
    if baseline.exists():
        print(f"nablabench ci: baseline of this machine class: {baseline}; gate at {GATE_FACTOR}x, alpha {GATE_ALPHA}")
        _advise(baseline, args.out)
        return _gate(baseline, args.out, GATE_FACTOR)
    others = sorted(args.baselines.glob("ci-*.csv"))
    if not others:
        print(f"nablabench ci: no baseline in {args.baselines}/: advisory run only (`python -m bench.ci --record`)")
        return 0
    print(f"nablabench ci: no baseline of this machine class ({baseline.name}); against {others[0].name}, another "
          f"machine class, only a regression beyond {CROSS_MACHINE_FACTOR}x fails. Record one with "
          f"`make bench-ci-baseline` on this machine class to gate at {GATE_FACTOR}x.", file=sys.stderr)
    return _gate(others[0], args.out, CROSS_MACHINE_FACTOR)


def _advise(baseline: Path, new: Path) -> None:
    """Print the ratio cells slower at SESSION_FACTOR: a regression, or the VM's state since the baseline."""
    for cell in sorted(_slower(baseline, new, SESSION_FACTOR)):
        print(f"nablabench ci: advisory: slower at {SESSION_FACTOR}x (not gated: between sessions the VM's state "
              f"moves ratios this far): {cell}", file=sys.stderr)


def _record(out: Path, baseline: Path) -> int:
    broken = failed_rows(out)
    if broken:
        print(f"nablabench ci: refusing to record {out} as the baseline: {len(broken)} variant(s) failed "
              "(a baseline must be a run whose every cell was timed):", file=sys.stderr)
        for line in broken[:20]:
            print(f"  {line}", file=sys.stderr)
        return 1
    baseline.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, baseline)
    shutil.copyfile(metadata_path(out), metadata_path(baseline))
    print(f"nablabench ci: recorded {baseline}; commit it (with its .meta.json) to gate this machine class")
    return 0


def _count_gate(args) -> int:
    """The counted cells (COUNT_RUN) against this machine class's count baseline, at COUNT_FACTOR:
    a variant whose instructions per call grew beyond it fails, as does a baseline variant the run
    did not count; where a backend's library versions changed, its moved cells are reported as the
    version's. Without valgrind, or without a count baseline of this class, nothing is gated."""
    from bench.analysis.counts import COUNT_FACTOR, compare_counts, format_counts
    from bench.measure.callgrind import missing

    why = missing()
    if why:
        print(f"nablabench ci: {why}. The gate falls back to wall-clock ratios for every cell.", file=sys.stderr)
        return 0
    out = args.out.with_name(args.out.stem + "-counts.csv")
    code = cli(COUNT_RUN + ["--out", str(out)])
    if code != 0:
        return code
    baseline = args.baselines / f"counts-{machine_of(out)}.csv"
    if args.record:
        return _record(out, baseline)
    if not baseline.exists():
        print(f"nablabench ci: no instruction-count baseline of this machine class ({baseline.name}): counts are not "
              "gated (they differ between CPUs). Record one with `make bench-ci-baseline`.", file=sys.stderr)
        return 0
    print(f"nablabench ci: instruction counts against {baseline}; gate at {COUNT_FACTOR}x")
    try:
        verdicts = compare_counts(baseline, out, COUNT_FACTOR)
    except ValueError as exc:  # the run counted nothing: every variant failed or was skipped
        print(f"nablabench ci: {exc}", file=sys.stderr)
        verdicts = []
    print(format_counts(verdicts, factor=COUNT_FACTOR))
    moved = sorted({v.versions for v in verdicts if v.status == "moved by a version change"})
    for versions in moved:
        print(f"nablabench ci: library versions changed ({versions}): the counts they moved are the version's, "
              "not gated; record a new baseline once the upgrade is meant", file=sys.stderr)
    failures = gate_failures(baseline, out)
    for line in failures:
        print(f"nablabench ci: {line}", file=sys.stderr)
    slower = [v for v in verdicts if v.status == "slower"]
    print(f"nablabench ci: {len(slower)} count regression(s) at {COUNT_FACTOR}x, {len(failures)} variant(s) not "
          "counted", file=sys.stderr)
    return 1 if slower or failures else 0


def failed_rows(csv: Path) -> list[str]:
    """The variants of a run that ended in a failure status (bench.core.schema.FAILED), one line each."""
    df = read_results([csv])
    bad = df[df["status"].isin(FAILED)].drop_duplicates(list(VARIANT_KEY) + ["status"])
    return [f"{label(r)}: `{r['status']}` ({r['message']})" for r in bad.astype(object).fillna("").to_dict("records")]


def _slower(baseline: Path, new: Path, factor: float) -> set[str]:
    """The ratio cells the gate calls slower (the same verdicts `compare --gate ratios` prints)."""
    from bench.analysis.compare import compare, load_samples, ratio_samples

    verdicts = compare(ratio_samples(load_samples(baseline)), ratio_samples(load_samples(new)), factor=factor,
                       alpha=GATE_ALPHA)
    return {v.cell for v in verdicts if v.status == "slower"}


def busy_cells(csv: Path, cells: set[str]) -> set[str]:
    """Those of `cells` (ratio cell labels) timed while other work used the machine (bench.core.load)."""
    from bench.core.load import BUSY_CPUS

    df = read_results([csv])
    busy = df[(df["load_other_cpus"] > BUSY_CPUS) | (df["load_steal_cpus"] > BUSY_CPUS)]
    where = {label(dict(r, mode="", variant="")) for r in busy.astype(object).to_dict("records")}
    return {cell for cell in cells if any(cell.startswith(w + " ") for w in where)}


def _gate(baseline: Path, new: Path, factor: float) -> int:
    """Exit 1 for every baseline cell the run did not time (missing, failed, its backend absent),
    and for slower cells; a slower cell timed on a busy machine only if a second, fresh run finds
    it slower too (a busy spell of a shared CI machine seldom lands on the same cells twice)."""
    code = cli(["compare", str(baseline), str(new), "--gate", "ratios", "--factor", str(factor),
                "--alpha", str(GATE_ALPHA)])
    if code != 1:
        return code
    failures = gate_failures(baseline, new)
    if failures:
        print(f"nablabench ci: {len(failures)} baseline cell(s) not timed by this run: the gate fails "
              "(no second run: a missing or failed cell is not noise)", file=sys.stderr)
        return 1
    slower = _slower(baseline, new, factor)
    busy = busy_cells(new, slower)
    if not busy:
        print(f"nablabench ci: {len(slower)} regression(s) at {factor}x, timed on a quiet machine", file=sys.stderr)
        return 1
    again = new.with_name(new.stem + "-confirm.csv")
    print(f"nablabench ci: {len(busy)} of {len(slower)} slower cell(s) timed beside other work; confirming them "
          f"with a second run -> {again}", file=sys.stderr)
    code = cli(RUN + ["--out", str(again)])
    if code != 0:
        return code
    confirmed = (slower - busy) | (busy & _slower(baseline, again, factor))
    for cell in sorted(confirmed):
        print(f"nablabench ci: slower: {cell}")
    print(f"nablabench ci: {len(confirmed)} regression(s) at {factor}x", file=sys.stderr)
    return 1 if confirmed else 0


if __name__ == "__main__":
    sys.exit(main())
