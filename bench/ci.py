"""CI regression tracking: the `ci` preset against the committed baseline of this machine class.

Baselines live in baselines/ci-<machine fingerprint>.csv (CPU model and count, GPU names: the
machine, not the host). A run gates on the within-run ratios (autodiff / analytic, paired per
round), at GATE_FACTOR and GATE_ALPHA against a baseline of the same machine class: their
false-alarm and detection rates were measured on that class (scripts/gate_rates.py; README,
"Tracking regressions in CI"). It fails at once on a baseline cell the run did not time (missing,
failed, its backend absent); a slower cell fails it, but where that cell was timed on a busy
machine (other work beside it, by the load monitor) only if a second, fresh run finds it slower
too. Against a baseline of another machine class, only a gross regression (CROSS_MACHINE_FACTOR)
fails: ratios move between CPUs too, by an amount nobody measured. With no baseline at all, the
run is advisory.

    python -m bench.ci            # run the preset, compare, exit 1 on a regression
    python -m bench.ci --record   # run the preset and store it as this machine class's baseline
"""
from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

from . import environment
from .cli import main as cli
from .results import metadata_path, read_metadata, read_results
from .schema import FAILED, VARIANT_KEY, label

# Measured on this 2-CPU machine class (scripts/gate_rates.py: 20 quiet runs of the preset against
# a baseline, intervals with the class's run-to-run spread): at factor 1.1 and alpha 0.1 no run
# raised an alarm (0 of 20; none at alpha 0.05 nor at 1.15 or 1.2), and a 1.2x slowdown planted in
# one ratio cell at a time was caught in 653 of 720 copies (alpha 0.05: 628); at factor 1.2 in 387.
GATE_FACTOR = 1.1
GATE_ALPHA = 0.1  # 90% intervals, and a false discovery rate of 10% across the cells of a comparison
CROSS_MACHINE_FACTOR = 3.0
RUN = ["run", "--preset", "ci", "--threads", "1", "--no-progress", "--overwrite"]


def machine_of(csv: Path) -> str:
    prints = {environment.machine_fingerprint(m) for m in read_metadata([csv]).values()}
    if len(prints) != 1:
        raise SystemExit(f"nablabench ci: {csv} does not come from one machine ({len(prints)} found)")
    return prints.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help="store this run as the baseline of this machine class")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"), help="folder of baselines (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results") / f"ci-{datetime.now():%Y%m%d-%H%M%S}.csv")
    args = parser.parse_args(argv)

    code = cli(RUN + ["--out", str(args.out)])
    if code != 0:
        return code
    machine = machine_of(args.out)
    baseline = args.baselines / f"ci-{machine}.csv"
    broken = failed_rows(args.out)
    if args.record and broken:
        print(f"nablabench ci: refusing to record {args.out} as the baseline: {len(broken)} variant(s) failed "
              "(a baseline must be a run whose every cell was timed):", file=sys.stderr)
        for line in broken[:20]:
            print(f"  {line}", file=sys.stderr)
        return 1
    if args.record:
        args.baselines.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out, baseline)
        shutil.copyfile(metadata_path(args.out), metadata_path(baseline))
        print(f"nablabench ci: recorded {baseline}; commit it (with its .meta.json) to gate this machine class")
        return 0
    if baseline.exists():
        print(f"nablabench ci: baseline of this machine class: {baseline}; gate at {GATE_FACTOR}x, alpha {GATE_ALPHA}")
        return _gate(baseline, args.out, GATE_FACTOR)
    others = sorted(args.baselines.glob("ci-*.csv"))
    if not others:
        print(f"nablabench ci: no baseline in {args.baselines}/: advisory run only (`python -m bench.ci --record`)")
        return 0
    print(f"nablabench ci: no baseline of this machine class ({baseline.name}); against {others[0].name}, another "
          f"machine class, only a regression beyond {CROSS_MACHINE_FACTOR}x fails. Record one with "
          f"`make bench-ci-baseline` on this machine class to gate at {GATE_FACTOR}x.", file=sys.stderr)
    return _gate(others[0], args.out, CROSS_MACHINE_FACTOR)


def failed_rows(csv: Path) -> list[str]:
    """The variants of a run that ended in a failure status (bench.schema.FAILED), one line each."""
    df = read_results([csv])
    bad = df[df["status"].isin(FAILED)].drop_duplicates(list(VARIANT_KEY) + ["status"])
    return [f"{label(r)}: `{r['status']}` ({r['message']})" for r in bad.astype(object).fillna("").to_dict("records")]


def _slower(baseline: Path, new: Path, factor: float) -> set[str]:
    """The ratio cells the gate calls slower (the same verdicts `compare --gate ratios` prints)."""
    from .verdicts import compare, load_samples, ratio_samples

    verdicts = compare(ratio_samples(load_samples(baseline)), ratio_samples(load_samples(new)), factor=factor,
                       alpha=GATE_ALPHA)
    return {v.cell for v in verdicts if v.status == "slower"}


def busy_cells(csv: Path, cells: set[str]) -> set[str]:
    """Those of `cells` (ratio cell labels) timed while other work used the machine (bench.load)."""
    from .load import BUSY_CPUS

    df = read_results([csv])
    busy = df[(df["load_other_cpus"] > BUSY_CPUS) | (df["load_steal_cpus"] > BUSY_CPUS)]
    where = {label(dict(r, mode="", variant="")) for r in busy.astype(object).to_dict("records")}
    return {cell for cell in cells if any(cell.startswith(w + " ") for w in where)}


def _gate(baseline: Path, new: Path, factor: float) -> int:
    """Exit 1 for every baseline cell the run did not time (missing, failed, its backend absent),
    and for slower cells; a slower cell timed on a busy machine only if a second, fresh run finds
    it slower too (a busy spell of a shared CI machine seldom lands on the same cells twice)."""
    from .verdicts import gate_failures

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
