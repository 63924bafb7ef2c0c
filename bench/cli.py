"""Command line: argparse -> the Python API (bench.api), which validates and runs. Bad input exits 2
before any work."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import backends
import problems

from bench import api
from bench.analysis.counts import COUNT_FACTOR
from bench.core import defaults, environment, precision
from bench.measure.solvers import DEFAULT_SOLVERS, SOLVERS
from bench.options import EXECUTORS, GATES, UsageError, problem_names
from bench.sweep.presets import PRESETS


class Renamed(argparse.Action):
    """A renamed option's old name: it still works, and says what replaced it. Keep one for every
    option a release renames (`run --samples`, which scripts used, became `--rounds`)."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"nablabench: note: {option_string} is now {self.new}; read as {self.new} {values}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nablabench",
        description="What automatic differentiation costs next to hand-derived derivatives, per framework.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list problems or backends", description="List problems or backends.")
    p_list.add_argument("what", nargs="?", choices=("problems", "backends"), default="problems")
    p_list.add_argument("--problems", help="also load these problems (module:NAME, file.py[:NAME])")

    p_check = sub.add_parser(
        "check", help="check hand-derived derivatives against finite differences and every framework's autodiff",
        description="Each derivative a problem declares, at several sizes and seeds: against central finite "
                    "differences (Cauchy's formula for dk), for consistency (Hessian symmetry, HVP = H v, "
                    "shapes, float64, f finite at the evaluation point) and against every installed backend's "
                    "autodiff. Exit 0 when all agree, 1 naming each failing derivative, 2 on bad input.")
    p_check.add_argument("problems", nargs="+", help="problem names or specs: some.module:NAME, "
                                                     "path/to/file.py:NAME, path/to/file.py")
    p_check.add_argument("--n", default="8,32", help="sizes (default: %(default)s; matrix variables use about sqrt(n))")
    p_check.add_argument("--seeds", default="0,1", help="instance seeds (default: %(default)s)")
    p_check.add_argument("--backends", help=f"autodiff backends to check against, from: {', '.join(backends.names())} "
                                            "(default: every installed one)")
    p_check.add_argument("--cost", action="store_true",
                         help="also check each declared cost model (problems.Cost) against a measurement: where it "
                              "says a call is memory-bound, its time x the measured bandwidth vs its declared bytes")

    p_run = sub.add_parser("run", help="run a sweep and write a results CSV",
                           description="Run a sweep: validate every derivative, then time it. "
                                       "Rows are appended to the CSV as each cell finishes.")
    p_run.add_argument("--preset", default="default", choices=sorted(PRESETS),
                       help="named sweep (default: %(default)s); the options below override it")
    p_run.add_argument("--problems", help=f"comma-separated, from: {', '.join(problems.built_in())}; or specs of "
                                          "your own: some.module:NAME, path/to/file.py:NAME, path/to/file.py")
    p_run.add_argument("--backends", help=f"comma-separated, from: {', '.join(backends.names())} "
                                          "(default: every installed one)")
    p_run.add_argument("--devices", default="cpu",
                       help="comma-separated, from: cpu, cuda; or auto: cpu plus cuda where a backend sees a GPU "
                            "(default: cpu)")
    p_run.add_argument("--dtypes", help=f"comma-separated, from: {', '.join(precision.DTYPES)} (default: float64; the "
                                        "precision preset's: float64,float32). Beside float64, every derivative's "
                                        "error against a higher precision is measured too")
    p_run.add_argument("--modes", default="analytic,autodiff", help="comma-separated, from: analytic, autodiff")
    p_run.add_argument("--tasks", help="comma-separated, from: eval, solve")
    p_run.add_argument("--derivatives", help=f"comma-separated, from: {', '.join(problems.DERIVATIVE_KINDS)} "
                                             "(eval task; each problem runs the kinds it defines)")
    p_run.add_argument("--solvers", help=f"comma-separated, from: {', '.join(SOLVERS)} (solve task; default: "
                                          f"{','.join(DEFAULT_SOLVERS)}, or the preset's): "
                                          + "; ".join(f"{s.name}, {s.summary}" for s in SOLVERS.values()))
    sizes = p_run.add_mutually_exclusive_group()
    sizes.add_argument("--n", help="sizes, e.g. 10,100,1000")
    sizes.add_argument("--n-logspace", help="START,STOP,NUM as np.logspace, rounded to unique integers")
    p_run.add_argument("--repeats", type=int, help=f"gradient-descent runs of each variant, at least (solve; >= 1; "
                                                   f"default: {defaults.REPEATS}, more where a run is cheap)")
    p_run.add_argument("--rounds", type=int, help="interleaved rounds a cell takes in each pass, at least (eval; >= 1; "
                                                  f"default: {defaults.ROUNDS}, or the preset's); "
                                                  "one sample of every variant each")
    p_run.add_argument("--samples", type=int, dest="rounds", action=Renamed, new="--rounds", help=argparse.SUPPRESS)
    p_run.add_argument("--max-rounds", type=int, default=defaults.MAX_ROUNDS,
                       help="rounds (eval) or runs (solve) a cell takes in one pass at most (default: %(default)s); "
                            "--rounds N --max-rounds N takes exactly N")
    p_run.add_argument("--sample-time", type=float, default=defaults.SAMPLE_TIME_S,
                       help="seconds one eval sample lasts at least (calls are looped to fill it; "
                            "default: %(default)g)")
    p_run.add_argument("--passes", type=int, help="passes over the sweep a cell takes at least (>= 1; default: "
                                                  f"{defaults.PASSES}, or the preset's); its intervals come from them")
    p_run.add_argument("--max-passes", type=int, help="... and at most, as many as its first pass's spread plans for "
                                                      f"--target (default: {defaults.MAX_PASSES}, or the preset's)")
    p_run.add_argument("--target", type=float, default=defaults.TARGET,
                       help="the 95%% interval half-width a cell's passes are planned for (default: %(default)g)")
    p_run.add_argument("--eps", type=float, default=defaults.EPS, help="stop when f - f* <= eps (default: %(default)g)")
    p_run.add_argument("--seed", type=int, default=defaults.SEED, help="instance seed (default: %(default)s)")
    p_run.add_argument("--threads", type=int, default=environment.default_threads(),
                       help="threads for every backend (default: %(default)s here: one CPU left to the system, "
                            f"at most {environment.MAX_DEFAULT_THREADS})")
    p_run.add_argument("--eval-budget", type=float, default=defaults.EVAL_BUDGET_S,
                       help="seconds per eval cell (default: %(default)g)")
    p_run.add_argument("--solve-budget", type=float, default=defaults.SOLVE_BUDGET_S,
                       help="seconds per solve cell (default: %(default)g)")
    p_run.add_argument("--memory-fraction", type=float, default=defaults.MEMORY_FRACTION,
                       help="skip cells estimated to need more than this fraction of free memory "
                            "(default: %(default)g)")
    p_run.add_argument("--rtol", type=float, default=defaults.RTOL,
                       help="analytic vs autodiff relative error above which a cell is `wrong` (default: %(default)g)")
    p_run.add_argument("--measure", default="time", choices=defaults.MEASURES,
                       help="time (default); or count the eval cells' work under valgrind's callgrind, on the CPU: "
                            "instructions per call, or cycles (instructions and the cache simulation's cycle estimate)")
    p_run.add_argument("--out", help="results CSV (default: a new results/run-<time>.csv, as from Python)")
    existing = p_run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="append to --out, skipping finished cells")
    existing.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="where cells run: here (local, the default) or on a Dask cluster (dask; "
                            "docs/cluster.md); this process writes every row either way")
    p_run.add_argument("--scheduler", metavar="ADDRESS",
                       help="--executor dask: a running Dask scheduler, e.g. tcp://10.0.0.1:8786")
    p_run.add_argument("--workers", type=int,
                       help="--executor dask without --scheduler: single-threaded Dask worker processes to "
                            "start here (default: the CPUs but one, over --threads)")
    p_run.add_argument("--report", metavar="DIR", help="also build the HTML report into DIR afterwards")

    p_report = sub.add_parser("report", help="build the HTML report from results CSVs",
                              description="Build reports/index.html and its figures from results CSVs.")
    p_report.add_argument("results", nargs="+", help="results CSV files")
    p_report.add_argument("--out", default="reports", help="output folder (default: %(default)s)")
    p_report.add_argument("--problems", help="load these problems' definitions for the catalogue "
                                             "(module:NAME, file.py[:NAME])")

    p_compare = sub.add_parser(
        "compare", help="verdicts between two runs (CSV or pytest-benchmark JSON): slower, faster, same, inconclusive",
        description="Per cell: the change NEW / BASE with the interval the two runs' intervals imply (Welch's t "
                    "over each run's per-pass estimates). `slower` needs the change to survive Benjamini-Hochberg "
                    "at false discovery rate --alpha across the cells and its estimate >= --factor; `same` needs "
                    "the whole interval within the factor; otherwise `inconclusive`, with the passes that would "
                    "settle it. Within-run ratios (autodiff / analytic, paired per round) and absolute times are "
                    "both compared; --gate picks which set the exit code: 1 if a gated cell is `slower`, or if a "
                    "cell the baseline timed is missing, failed (`wrong`, `error`, `crashed`, `timeout`, ...) or "
                    "its backend is absent. Two counted runs (--measure instructions) are compared by their "
                    "instructions per call instead: `slower` beyond --factor (default for counts: "
                    f"{COUNT_FACTOR:g}), failures as for times.")
    p_compare.add_argument("base", help="baseline results CSV or pytest-benchmark JSON")
    p_compare.add_argument("new", help="new results CSV or pytest-benchmark JSON")
    p_compare.add_argument("--factor", type=float, help=f"median ratio that counts (default: {defaults.FACTOR:g}; "
                                                        f"for counted runs {COUNT_FACTOR:g})")
    p_compare.add_argument("--alpha", type=float, default=defaults.ALPHA,
                           help="1 - the intervals' level, and the false discovery rate across cells (default: "
                                "%(default)g: 95%% intervals)")
    p_compare.add_argument("--gate", choices=GATES, default="auto",
                           help="which verdicts set the exit code: auto (default) gates absolute times too when "
                                "both runs have the same setup fingerprint, else only within-run ratios; missing "
                                "and failed cells gate unless `none`")
    p_compare.add_argument("--normalise", action="store_true",
                           help="also show absolute times in units of each cell's drift-monitor reference time")

    p_ab = sub.add_parser(
        "ab", help="time the same cells for two sides (git refs, the working tree, other environments) in one run",
        description="An A/B run: every pass times both sides of each cell one after the other, in an order drawn "
                    "per pass, and each variant's NEW / BASE comes from the passes' paired ratios. A side is a git "
                    "ref of this project (its problems, backends and measuring code), `.` (this working tree) or "
                    "python:PATH (this tree under another environment's interpreter, e.g. other framework "
                    "versions). Exit 1 if a variant is slower (at --factor, false discovery rate --alpha), fails or "
                    "is missing on the new side, or nothing was compared; 2 on bad input.")
    p_ab.add_argument("base", help="git ref, `.`, or python:PATH")
    p_ab.add_argument("new", help="git ref, `.`, or python:PATH")
    p_ab.add_argument("--preset", default="ci", choices=sorted(PRESETS), help="the cells (default: %(default)s)")
    p_ab.add_argument("--problems", help="comma-separated problems (default: the preset's)")
    p_ab.add_argument("--backends", help="comma-separated backends (default: every installed one)")
    p_ab.add_argument("--derivatives", help="comma-separated derivative kinds (default: the preset's)")
    p_ab.add_argument("--n", help="sizes, e.g. 100,1000 (default: the preset's)")
    p_ab.add_argument("--passes", type=int, default=defaults.AB_PASSES,
                      help="passes, each timing both sides of every cell (default: %(default)s)")
    p_ab.add_argument("--factor", type=float,
                      help=f"NEW / BASE that counts as slower (default: {defaults.AB_FACTOR:g}; counted: "
                           f"{defaults.AB_COUNT_FACTOR:g})")
    p_ab.add_argument("--alpha", type=float, default=defaults.ALPHA,
                      help="1 - the intervals' level, and the false discovery rate (default: %(default)g)")
    p_ab.add_argument("--measure", default="time", choices=defaults.MEASURES,
                      help="time (default), or count instructions under callgrind on both sides")
    p_ab.add_argument("--threads", type=int, default=1, help="threads for every backend (default: %(default)s)")
    p_ab.add_argument("--out", help="results CSV (default: a new results/ab-<time>.csv); verdicts beside it")
    p_ab.add_argument("--report", metavar="DIR", help="also write the A/B page into DIR")
    p_ab.add_argument("--no-progress", action="store_true", help="no progress bar")

    p_history = sub.add_parser("history", help="metrics over commits, as a page and as github-action-benchmark JSON",
                               description="One run per file (CSV with its .meta.json, or pytest-benchmark "
                                           "JSON), ordered by time; medians per cell over commits.")
    p_history.add_argument("runs", nargs="+", help="results CSVs or pytest-benchmark JSON files")
    p_history.add_argument("--out", default="reports/history", help="output folder (default: %(default)s)")
    return parser


def _cmd_list(args) -> int:
    if args.problems:
        problem_names(args.problems)
    if args.what == "problems":
        print(f"{'problem':16} {'derivatives':20} {'tags':32} {'source':12} seed reference")
        for name in problems.names():
            p = problems.get(name)
            print(f"{name:16} {','.join(p.derivatives):20} {', '.join(sorted(p.tags)):32} "
                  f"{problems.origin(name):12} {p.seed_ref}")
        return 0
    for name in backends.names():
        b = backends.get(name)
        ok, reason = b.available()
        state = "available" if ok else f"unavailable: {reason}"
        if b.presets is not None:
            state += f" (runs when named by --backends, or in preset {', '.join(b.presets)})"
        print(f"{name:13} modes={','.join(b.modes):18} {backends.source(name):10} {state}")
    return 0


RUN_OPTIONS = ("preset", "problems", "backends", "devices", "dtypes", "modes", "tasks", "derivatives", "solvers", "n",
               "n_logspace", "repeats", "rounds", "max_rounds", "sample_time", "passes", "max_passes", "target", "eps",
               "seed", "threads", "eval_budget", "solve_budget", "memory_fraction", "rtol", "out", "resume",
               "overwrite", "executor", "scheduler", "workers", "report", "measure")


def _cmd_run(args) -> int:
    results = api.run(**{name: getattr(args, name) for name in RUN_OPTIONS}, progress=not args.no_progress)
    if results.interrupted:
        again = " ".join(a for a in sys.argv[1:] if a not in ("--overwrite", "--resume"))
        print(f"nablabench: interrupted; {results.path} is valid. Resume with: nablabench {again} --resume",
              file=sys.stderr)
        return 130
    return 0


def _cmd_check(args) -> int:
    result = api.check(",".join(args.problems), n=args.n, seeds=args.seeds, backends=args.backends, cost=args.cost)
    print(result)
    if not result.ok:
        print(f"nablabench check: FAILED: {'; '.join(result.failing)}")
        return 1
    print(f"nablabench check: every derivative of {', '.join(result.problems)} agrees.")
    return 0


def _cmd_report(args) -> int:
    if args.problems:
        problem_names(args.problems)
    print(f"nablabench: report written to {api.build_report(args.results, out=args.out)}", file=sys.stderr)
    return 0


def _cmd_compare(args) -> int:
    comparison = api.compare(args.base, args.new, factor=args.factor, alpha=args.alpha, gate=args.gate,
                             normalise=args.normalise)
    print(comparison)
    return 0 if comparison.passed else 1


def _cmd_ab(args) -> int:
    result = api.ab(args.base, args.new, preset=args.preset, problems=args.problems, backends=args.backends,
                    derivatives=args.derivatives, n=args.n, passes=args.passes, factor=args.factor, alpha=args.alpha,
                    measure=args.measure, threads=args.threads, out=args.out, report=args.report,
                    progress=not args.no_progress)
    print(result)
    return 0 if result.passed else 1


def _cmd_history(args) -> int:
    from bench.analysis.compare import CompareInputError
    from bench.analysis.history import build_history
    from bench.sweep.results import NotResultsError

    try:
        index = build_history([Path(p) for p in args.runs], Path(args.out))
    except (CompareInputError, NotResultsError) as exc:
        raise UsageError(str(exc)) from None
    print(f"nablabench: history written to {index}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        commands = {"list": _cmd_list, "check": _cmd_check, "run": _cmd_run, "report": _cmd_report,
                    "compare": _cmd_compare, "history": _cmd_history, "ab": _cmd_ab}
        return commands[args.command](args)
    except UsageError as exc:
        print(f"nablabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C after the run had stopped: what it wrote is whole
        if args.command == "run":
            print("nablabench: interrupted; the CSV holds every whole row. Resume with the same command and "
                  "--resume", file=sys.stderr)
        return 130
