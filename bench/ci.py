"""CI regression tracking: this tree against a base commit named in the repository, both measured in
the same run (an A/B run, bench.api.ab). No timing is compared across sessions.

    python -m bench.ci                 # both gates; exit 1 on a regression or failure, 2 on bad input
    python -m bench.ci --gates time    # the wall-clock gate alone (counts: the count gate alone)
    python -m bench.ci --accept        # a change of speed is meant: HEAD becomes the base (commit the file)

The wall-clock gate: the `ci` preset's cells, both sides timed in each of AB_PASSES passes, each
variant's own time (analytic, autodiff, numpy alike) judged by its paired NEW / BASE at AB_FACTOR.
The count gate: the gradient cells at n = 100 (overhead-bound: a call's data in the caches) counted
under callgrind on both sides, at AB_COUNT_FACTOR. The HVP cells are left to the wall-clock gate: under
valgrind a cell costs about 10 s of checks and compiles, and counting them too would put CI past its
15 minutes. Either fails on a variant slower, one that fails or is
missing on the new side, or an empty comparison; counts asked for where valgrind is missing are a
usage error (exit 2), not a pass.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from bench import api
from bench.core import defaults
from bench.options import UsageError

BASE_FILE = Path(__file__).resolve().parents[1] / "baselines" / "ab-base"
COUNTED_SIZES = "100"
COUNTED_DERIVATIVES = "grad"


def base_commit(path: Path = BASE_FILE) -> str:
    """The base commit named in the repository: the first line of baselines/ab-base not a comment."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise UsageError(f"{path} names no commit.")
    return lines[0]


def accept(path: Path = BASE_FILE) -> str:
    """Make HEAD the base: write its commit into `path` (keeping its comments)."""
    head = subprocess.run(["git", "-C", str(path.parents[1]), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    comments = [line for line in path.read_text().splitlines() if line.startswith("#")] if path.exists() else []
    path.write_text("\n".join(comments + [head]) + "\n")
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help=f"the base: a git ref (default: the commit in {BASE_FILE.name})")
    parser.add_argument("--new", default=".", help="the new side (default: this working tree, `.`)")
    parser.add_argument("--gates", choices=("both", "time", "counts"), default="both",
                        help="the wall-clock gate, the instruction-count gate, or both (default)")
    parser.add_argument("--out", type=Path, default=Path("results") / f"ci-{datetime.now():%Y%m%d-%H%M%S}",
                        help="folder for the runs and their pages (default: %(default)s)")
    parser.add_argument("--accept", action="store_true", help="make HEAD the base commit and exit")
    args = parser.parse_args(argv)
    try:
        if args.accept:
            print(f"nablabench ci: the base is now {accept()} ({BASE_FILE}); commit it")
            return 0
        base = args.base or base_commit()
        codes = []
        if args.gates != "counts":
            codes.append(_gate(base, args.new, args.out / "time", measure="time"))
        if args.gates != "time":
            codes.append(_gate(base, args.new, args.out / "counts", measure="instructions", n=COUNTED_SIZES,
                               derivatives=COUNTED_DERIVATIVES))
        return max(codes)
    except UsageError as exc:
        print(f"nablabench ci: error: {exc}", file=sys.stderr)
        return 2


def _gate(base: str, new: str, folder: Path, *, measure: str, n: str | None = None,
          derivatives: str | None = None) -> int:
    result = api.ab(base, new, preset="ci", n=n, derivatives=derivatives, measure=measure, out=folder / "ab.csv",
                    report=folder, progress=False)
    factor = defaults.AB_FACTOR if measure == "time" else defaults.AB_COUNT_FACTOR
    print(f"nablabench ci: {'wall clock' if measure == 'time' else 'instruction counts'} of {new} against {base}, "
          f"gate at {factor:g}x:")
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
