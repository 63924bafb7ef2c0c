"""CI regression tracking: the `ci` preset against the committed baseline of this machine class.

Baselines live in baselines/ci-<machine fingerprint>.csv (CPU model and count, GPU names: the
machine, not the host). A run gates on the within-run ratios (autodiff / analytic, paired per
round), at GATE_FACTOR against a baseline of the same machine class: its false-alarm and
detection rates were measured on that class (README, "Tracking regressions in CI"). Against a baseline of
another machine class, only a gross regression (CROSS_MACHINE_FACTOR) fails: ratios move between
CPUs too, by an amount nobody measured. With no baseline at all, the run is advisory.

    python -m bench.ci            # run the preset, compare, exit 1 on a regression a second run confirms
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

# Measured on this 2-CPU machine class (five runs against a baseline): at 1.2, one run in five
# flagged one of its 36 ratio cells; at 1.3, none of 180 cell comparisons, while a 1.4x slowdown
# planted in one variant was caught in 66 of 72 copies and 1.5x in all.
GATE_FACTOR = 1.3
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
        print(f"nablabench ci: baseline of this machine class: {baseline}; gate at {GATE_FACTOR}x")
        return _confirmed(baseline, args.out, GATE_FACTOR)
    others = sorted(args.baselines.glob("ci-*.csv"))
    if not others:
        print(f"nablabench ci: no baseline in {args.baselines}/: advisory run only (`python -m bench.ci --record`)")
        return 0
    print(f"nablabench ci: no baseline of this machine class ({baseline.name}); against {others[0].name}, another "
          f"machine class, only a regression beyond {CROSS_MACHINE_FACTOR}x fails. Record one with "
          f"`make bench-ci-baseline` on this machine class to gate at {GATE_FACTOR}x.", file=sys.stderr)
    return _confirmed(others[0], args.out, CROSS_MACHINE_FACTOR)


def failed_rows(csv: Path) -> list[str]:
    """The variants of a run that ended in a failure status (bench.schema.FAILED), one line each."""
    df = read_results([csv])
    bad = df[df["status"].isin(FAILED)].drop_duplicates(list(VARIANT_KEY) + ["status"])
    return [f"{label(r)}: `{r['status']}` ({r['message']})" for r in bad.astype(object).fillna("").to_dict("records")]


def _slower(baseline: Path, new: Path, factor: float) -> set[str]:
    """The ratio cells the gate calls slower (the same verdicts `compare --gate ratios` prints)."""
    from .compare import compare, load_samples, ratio_samples

    verdicts = compare(ratio_samples(load_samples(baseline)), ratio_samples(load_samples(new)), factor=factor)
    return {v.cell for v in verdicts if v.status == "slower"}


def _confirmed(baseline: Path, new: Path, factor: float) -> int:
    """Exit 1 for every baseline cell the run did not time (missing, failed, its backend absent),
    and for slower cells only where a second, fresh run also finds them slower: a real regression
    shows twice, a busy spell of a shared CI machine seldom lands on the same cells."""
    from .compare import gate_failures

    code = cli(["compare", str(baseline), str(new), "--gate", "ratios", "--factor", str(factor)])
    if code != 1:
        return code
    failures = gate_failures(baseline, new)
    if failures:
        print(f"nablabench ci: {len(failures)} baseline cell(s) not timed by this run: the gate fails "
              "(no second run: a missing or failed cell is not noise)", file=sys.stderr)
        return 1
    again = new.with_name(new.stem + "-confirm.csv")
    print(f"nablabench ci: a regression at {factor}x; confirming with a second run -> {again}", file=sys.stderr)
    code = cli(RUN + ["--out", str(again)])
    if code != 0:
        return code
    confirmed = _slower(baseline, new, factor) & _slower(baseline, again, factor)
    for cell in sorted(confirmed):
        print(f"nablabench ci: slower in both runs: {cell}")
    print(f"nablabench ci: {len(confirmed)} regression(s) confirmed by the second run", file=sys.stderr)
    return 1 if confirmed else 0


if __name__ == "__main__":
    sys.exit(main())
