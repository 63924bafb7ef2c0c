"""Command line: argparse -> validate -> runner or report. Bad input exits 2 before any work."""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import backends
import problems

from . import defaults, environment
from .presets import PRESETS, customise, logspace_sizes

TASKS = ("eval", "solve")
DEVICES = ("cpu", "cuda")
EXECUTORS = ("local", "dask")


class UsageError(Exception):
    pass


def _names(text: str, valid, what: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise UsageError(f"--{what} is empty; expected a comma-separated list of: {', '.join(valid)}.")
    for item in items:
        if item not in valid:
            raise UsageError(f"Unknown {what.rstrip('s')} `{item}`; expected one of: {', '.join(valid)}.")
    return items


def _problems(text: str) -> tuple[str, ...]:
    """Problem names from --problems: registered names, and specs that load problems from outside
    (some.module:NAME, path/to/file.py:NAME, path/to/file.py)."""
    chosen = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if problems.is_spec(item):
            try:
                chosen.extend(problems.load(item))
            except (ValueError, TypeError) as exc:
                raise UsageError(str(exc)) from None
        elif item in problems.names():
            chosen.append(item)
        else:
            raise UsageError(f"Unknown problem `{item}`; expected one of: {', '.join(problems.names())}, "
                             "or some.module:NAME, path/to/file.py:NAME, path/to/file.py.")
    if not chosen:
        raise UsageError("--problems is empty; expected names or specs (module:NAME, file.py[:NAME]).")
    return tuple(dict.fromkeys(chosen))


def _sizes(text: str) -> tuple[int, ...]:
    sizes = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"--n: `{item}` is not a number; expected integers >= 1, e.g. 10,100,1000.") from None
        if not value.is_integer() or value < 1:
            raise UsageError(f"--n: `{item}` is not an integer >= 1.")
        sizes.append(int(value))
    return tuple(sorted(set(sizes)))


def _logspace(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    try:
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise UsageError(f"--n-logspace: `{text}` is not START,STOP,NUM (e.g. 1,4,50).") from None
    if num < 1 or stop < start or start < 0:
        raise UsageError(f"--n-logspace: `{text}` needs 0 <= START <= STOP and NUM >= 1.")
    return logspace_sizes(start, stop, num)


def _positive(value: float, what: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a positive number; got {value}.")


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
                       help="comma-separated, from: cpu, cuda; or auto: cpu plus cuda where a backend sees a GPU (default: cpu)")
    p_run.add_argument("--modes", default="analytic,autodiff", help="comma-separated, from: analytic, autodiff")
    p_run.add_argument("--tasks", help="comma-separated, from: eval, solve")
    p_run.add_argument("--derivatives", help=f"comma-separated, from: {', '.join(problems.DERIVATIVE_KINDS)} "
                                             "(eval task; each problem runs the kinds it defines)")
    sizes = p_run.add_mutually_exclusive_group()
    sizes.add_argument("--n", help="sizes, e.g. 10,100,1000")
    sizes.add_argument("--n-logspace", help="START,STOP,NUM as np.logspace, rounded to unique integers")
    p_run.add_argument("--repeats", type=int, help=f"gradient-descent runs of each variant, at least (solve; >= 1; "
                                                   f"default: {defaults.REPEATS}, more where a run is cheap)")
    p_run.add_argument("--rounds", type=int, help="interleaved rounds a cell takes in each pass, at least (eval; >= 1; "
                                                  f"default: {defaults.ROUNDS}, or the preset's); one sample of every variant each")
    p_run.add_argument("--max-rounds", type=int, default=defaults.MAX_ROUNDS,
                       help="rounds (eval) or runs (solve) a cell takes in one pass at most (default: %(default)s); "
                            "--rounds N --max-rounds N takes exactly N")
    p_run.add_argument("--sample-time", type=float, default=defaults.SAMPLE_TIME_S,
                       help="seconds one eval sample lasts at least (calls are looped to fill it; default: %(default)g)")
    p_run.add_argument("--passes", type=int, help="passes over the sweep a cell takes at least (>= 1; default: "
                                                  f"{defaults.PASSES}, or the preset's); its intervals come from them")
    p_run.add_argument("--max-passes", type=int, help="... and at most, while an interval of the cell is wider than "
                                                      f"--target (default: {defaults.MAX_PASSES}, or the preset's)")
    p_run.add_argument("--target", type=float, default=defaults.TARGET,
                       help="the 95%% interval half-width at which a cell takes no more passes (default: %(default)g)")
    p_run.add_argument("--eps", type=float, default=defaults.EPS, help="stop when f - f* <= eps (default: %(default)g)")
    p_run.add_argument("--seed", type=int, default=defaults.SEED, help="instance seed (default: %(default)s)")
    p_run.add_argument("--threads", type=int, default=environment.default_threads(),
                       help="threads for every backend (default: %(default)s here: one CPU left to the system, "
                            f"at most {environment.MAX_DEFAULT_THREADS})")
    p_run.add_argument("--eval-budget", type=float, default=defaults.EVAL_BUDGET_S, help="seconds per eval cell (default: %(default)g)")
    p_run.add_argument("--solve-budget", type=float, default=defaults.SOLVE_BUDGET_S, help="seconds per solve cell (default: %(default)g)")
    p_run.add_argument("--memory-fraction", type=float, default=defaults.MEMORY_FRACTION,
                       help="skip cells estimated to need more than this fraction of free memory (default: %(default)g)")
    p_run.add_argument("--rtol", type=float, default=defaults.RTOL,
                       help="analytic vs autodiff relative error above which a cell is `wrong` (default: %(default)g)")
    p_run.add_argument("--out", default="results/run.csv", help="results CSV (default: %(default)s)")
    existing = p_run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="append to --out, skipping finished cells")
    existing.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="where cells run: here (local, the default) or on a Dask cluster (dask; "
                            "README: Running on a cluster); this process writes every row either way")
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
                    "its backend is absent.")
    p_compare.add_argument("base", help="baseline results CSV or pytest-benchmark JSON")
    p_compare.add_argument("new", help="new results CSV or pytest-benchmark JSON")
    p_compare.add_argument("--factor", type=float, default=defaults.FACTOR, help="median ratio that counts (default: %(default)g)")
    p_compare.add_argument("--alpha", type=float, default=defaults.ALPHA,
                           help="1 - the intervals' level, and the false discovery rate across cells (default: "
                                "%(default)g: 95%% intervals)")
    p_compare.add_argument("--gate", choices=("auto", "ratios", "absolute", "both", "none"), default="auto",
                           help="which verdicts set the exit code: auto (default) gates absolute times too when "
                                "both runs have the same setup fingerprint, else only within-run ratios; missing "
                                "and failed cells gate unless `none`")
    p_compare.add_argument("--normalise", action="store_true",
                           help="also show absolute times in units of each cell's drift-monitor reference time")

    p_history = sub.add_parser("history", help="metrics over commits, as a page and as github-action-benchmark JSON",
                               description="One run per file (CSV with its .meta.json, or pytest-benchmark "
                                           "JSON), ordered by time; medians per cell over commits.")
    p_history.add_argument("runs", nargs="+", help="results CSVs or pytest-benchmark JSON files")
    p_history.add_argument("--out", default="reports/history", help="output folder (default: %(default)s)")
    return parser


def _cmd_list(args) -> int:
    if args.problems:
        _problems(args.problems)
    if args.what == "problems":
        print(f"{'problem':16} {'derivatives':20} {'tags':32} {'source':12} seed reference")
        for name in problems.names():
            p = problems.get(name)
            print(f"{name:16} {','.join(p.derivatives):20} {', '.join(sorted(p.tags)):32} "
                  f"{problems.source(name) or 'built-in':12} {p.seed_ref}")
        return 0
    for name in backends.names():
        b = backends.get(name)
        ok, reason = b.available()
        state = "available" if ok else f"unavailable: {reason}"
        print(f"{name:10} modes={','.join(b.modes):18} {backends.source(name):10} {state}")
    return 0


def _validate_executor(args) -> None:
    if args.executor == "local":
        if args.scheduler or args.workers is not None:
            raise UsageError("--scheduler and --workers need --executor dask; expected --executor "
                             f"{' or '.join(EXECUTORS)}, with --scheduler ADDRESS or --workers N for dask.")
        return
    if args.scheduler and args.workers is not None:
        raise UsageError("--scheduler and --workers exclude each other: connect to a running Dask cluster "
                         "(--scheduler ADDRESS) or start one here (--workers N).")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1; got {args.workers}.")
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("--executor dask needs dask and distributed: pip install nablabench[dask].") from None


def _validate_run(args):
    from .executors import Settings

    _validate_executor(args)
    problem_names = _problems(args.problems) if args.problems else None
    tasks = _names(args.tasks, TASKS, "tasks") if args.tasks else None
    derivatives = _names(args.derivatives, backends.DERIVATIVES, "derivatives") if args.derivatives else None
    modes = _names(args.modes, backends.MODES, "modes")
    auto = args.devices.strip() == "auto"
    devices = ("cpu", "cuda") if auto else _names(args.devices, DEVICES, "devices")
    sizes = _sizes(args.n) if args.n else _logspace(args.n_logspace) if args.n_logspace else None
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1; got {args.repeats}.")
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1; got {args.rounds}.")
    if args.max_rounds < 1 or (args.rounds is not None and args.max_rounds < args.rounds):
        raise UsageError(f"--max-rounds must be >= 1 and at least --rounds; got {args.max_rounds}.")
    _positive(args.eps, "--eps")
    _positive(args.sample_time, "--sample-time")
    _positive(args.target, "--target")
    for name in ("passes", "max_passes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1; got {value}.")
    if args.passes is not None and args.max_passes is not None and args.max_passes < args.passes:
        raise UsageError(f"--max-passes ({args.max_passes}) must be at least --passes ({args.passes}).")
    _positive(args.eval_budget, "--eval-budget")
    _positive(args.solve_budget, "--solve-budget")
    _positive(args.rtol, "--rtol")
    if not 0 < args.memory_fraction <= 1:
        raise UsageError(f"--memory-fraction must be in (0, 1]; got {args.memory_fraction}.")
    cpus = environment.cpu_count()
    if args.threads < 1 or (args.threads > cpus and not args.scheduler):  # a cluster's machines have their own CPUs
        raise UsageError(f"--threads must be between 1 and {cpus} (the CPUs this process may use); got {args.threads}.")

    if args.backends:
        chosen = _names(args.backends, backends.names(), "backends")
        for name in chosen:
            ok, reason = backends.get(name).available()
            if not ok:
                raise UsageError(f"Backend `{name}` is unavailable: {reason}.")
    else:
        chosen = tuple(n for n in backends.names() if backends.get(n).available()[0])
        for name in sorted(set(backends.names()) - set(chosen)):
            print(f"note: backend `{name}` skipped: {backends.get(name).available()[1]}", file=sys.stderr)
    with_cuda: tuple[str, ...] = ()
    if "cuda" in devices:
        capable = [n for n in chosen if "cuda" in backends.get(n).accelerators]
        # on a cluster, the workers that declare a `gpu` resource have the GPUs (checked when connected)
        with_cuda = tuple(n for n in capable if args.executor == "dask" or "cuda" in _probe_devices(n))
        if not with_cuda and auto:
            devices = ("cpu",)
        elif not with_cuda:
            raise UsageError("Device `cuda` requested, but no selected backend sees a CUDA GPU here "
                             f"(of those selected, only {', '.join(capable) or 'none'} can use one); use --devices cpu.")
        for name in sorted(set(chosen) - set(with_cuda)):
            print(f"note: backend `{name}` runs on the CPU only here", file=sys.stderr)

    out = Path(args.out)
    if out.suffix != ".csv":
        raise UsageError(f"--out must name a .csv file; got `{out}`.")
    if out.exists() and not (args.resume or args.overwrite):
        raise UsageError(f"`{out}` exists; pass --resume to continue it or --overwrite to replace it.")
    if args.resume and out.exists() and out.stat().st_size > 0:
        from .results import COLUMNS

        with open(out, encoding="utf-8") as fh:
            if fh.readline().strip().split(",") != list(COLUMNS):  # rows appended to it would not line up
                raise UsageError(f"`{out}` has the columns of another nablabench version; --overwrite it or "
                                 "write a new --out.")
    _check_writable(out)

    if derivatives and problem_names and (tasks is None or "eval" in tasks):
        if not any(d in problems.get(name).derivatives for name in problem_names for d in derivatives):
            defined = "; ".join(f"{name}: {', '.join(problems.get(name).derivatives)}" for name in problem_names)
            raise UsageError(f"No selected problem defines --derivatives {','.join(derivatives)} ({defined}).")
    jobs = customise(PRESETS[args.preset], tasks=tasks, problems=problem_names, derivatives=derivatives,
                     sizes=sizes, repeats=args.repeats, rounds=args.rounds, passes=args.passes,
                     max_passes=args.max_passes)
    if not jobs:
        raise UsageError("Nothing to run: the options removed every job of the preset.")
    settings = Settings(backends=chosen, devices=devices, modes=modes, eps=args.eps, seed=args.seed,
                        threads=args.threads, eval_budget_s=args.eval_budget,
                        solve_budget_s=args.solve_budget, memory_fraction=args.memory_fraction,
                        rtol=args.rtol, min_sample_s=args.sample_time, target=args.target, max_rounds=args.max_rounds,
                        cuda_backends=with_cuda)
    return jobs, settings, out


def _probe_devices(name: str) -> list[str]:
    """A backend's devices, asked in a short-lived process (no GPU context stays in this one)."""
    import subprocess

    code = f"import backends; print(','.join(backends.get({name!r}).devices()))"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env=dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false"))
    return done.stdout.strip().split(",") if done.returncode == 0 else ["cpu"]


def _check_writable(path: Path) -> None:
    # Try it for real: permission bits say little to root, and /proc-like folders refuse anyway.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".nablabench-probe-"):
            pass
        if path.exists():
            with open(path, "a"):
                pass
    except OSError as exc:
        raise UsageError(f"Cannot write `{path}`: {exc.strerror or exc}.") from None


def _cmd_check(args) -> int:
    from .check import check, failing_derivatives, table

    names = _problems(",".join(args.problems))
    sizes = _sizes(args.n)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise UsageError(f"--seeds: `{args.seeds}` is not a comma-separated list of integers.") from None
    chosen = _names(args.backends, backends.names(), "backends") if args.backends else None
    for name in chosen or ():
        ok, reason = backends.get(name).available()
        if not ok:
            raise UsageError(f"Backend `{name}` is unavailable: {reason}.")
    findings = check(list(names), sizes=sizes, seeds=seeds, backend_names=chosen)
    print(table(findings))
    failing = failing_derivatives(findings)
    if failing:
        print(f"nablabench check: FAILED: {'; '.join(failing)}")
        return 1
    print(f"nablabench check: every derivative of {', '.join(names)} agrees.")
    return 0


def _cmd_run(args) -> int:
    from .runner import plan, run_sweep

    jobs, settings, out = _validate_run(args)
    executor = _open_cluster(args) if args.executor == "dask" else None
    try:
        if executor is not None and "cuda" in settings.devices and not executor.gpus:
            if args.devices.strip() != "auto":
                raise UsageError("Device `cuda` requested, but no Dask worker declares a `gpu` resource; start GPU "
                                 "workers with --resources bench=1,gpu=1, or use --devices cpu.")
            settings = replace(settings, devices=("cpu",), cuda_backends=())
        cells = plan(jobs, settings)
        if not cells:
            defined = "; ".join(f"{name}: {', '.join(problems.get(name).derivatives)}"
                                for name in sorted({p for job in jobs for p in job.problems}))
            raise UsageError("Nothing to run: no backend supports the selected modes and devices, or no "
                             f"selected problem defines the selected derivatives ({defined}).")
        print(f"nablabench: {len(cells)} cells, backends {', '.join(settings.backends)}, "
              f"{settings.threads} threads, {executor.description if executor else 'local'} -> {out}", file=sys.stderr)
        summary = run_sweep(cells, settings, out, resume=args.resume, progress=not args.no_progress,
                            executor=executor)
    finally:
        if executor is not None:
            executor.close()
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["statuses"].items())) or "no rows"
    print(f"nablabench: rows by status: {counts}", file=sys.stderr)
    if out.exists() and out.stat().st_size > 0:
        from .summary import write_summary

        print(f"nablabench: intervals per cell and variant in {write_summary([out])}", file=sys.stderr)
    if summary["interrupted"]:
        again = " ".join(a for a in sys.argv[1:] if a not in ("--overwrite", "--resume"))
        print(f"nablabench: interrupted; {out} is valid. Resume with: nablabench {again} --resume",
              file=sys.stderr)
        return 130
    if args.report:
        return _build_report([out], Path(args.report))
    return 0


def _open_cluster(args):
    from .cluster import ClusterError, DaskExecutor

    workers = args.workers or max(1, (environment.cpu_count() - 1) // args.threads)
    try:
        return DaskExecutor.open(args.scheduler, workers)
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


def _build_report(paths, out: Path) -> int:
    from .report import build_report

    index = build_report(paths, out)
    print(f"nablabench: report written to {index}", file=sys.stderr)
    return 0


def _cmd_report(args) -> int:
    from .results import NotResultsError, read_results

    if args.problems:
        _problems(args.problems)
    try:
        read_results(args.results)
    except NotResultsError as exc:
        raise UsageError(str(exc)) from None
    return _build_report([Path(p) for p in args.results], Path(args.out))


def _cmd_compare(args) -> int:
    from .compare import (CompareInputError, by_machine, cell_samples, compare, format_table, gate_failures,
                          load_samples, ratio_samples, setup_fingerprint)
    from .results import NotResultsError

    if not 0 < args.alpha < 0.5:
        raise UsageError(f"--alpha must be in (0, 0.5); got {args.alpha}.")
    if not args.factor > 1:
        raise UsageError(f"--factor must be above 1; got {args.factor}.")
    try:
        base, new = load_samples(args.base), load_samples(args.new)
        prints = setup_fingerprint(args.base), setup_fingerprint(args.new)
        failures = gate_failures(args.base, args.new)
    except (CompareInputError, NotResultsError) as exc:
        raise UsageError(str(exc)) from None
    same_setup = prints[0] is not None and prints[0] == prints[1]
    gated = {"auto": ["ratios", "absolute"] if same_setup else ["ratios"], "ratios": ["ratios"],
             "absolute": ["absolute"], "both": ["ratios", "absolute"], "none": []}[args.gate]
    if args.gate == "auto":
        print(f"gate: {' and '.join(gated)} (setup fingerprints {prints[0]} and {prints[1]}: "
              f"{'the same setup' if same_setup else 'different or unknown setups, so absolute times are advisory'})")
    options = dict(factor=args.factor, alpha=args.alpha)
    machine = by_machine(base, new)  # a run over several machines: cells match per machine
    tables = {"ratios": compare(ratio_samples(base, machine=machine), ratio_samples(new, machine=machine), **options),
              "absolute": compare(cell_samples(base, machine=machine), cell_samples(new, machine=machine), **options)}
    titles = {"ratios": "within-run ratios (autodiff / analytic, paired per round)", "absolute": "absolute times"}
    level = f"{1 - args.alpha:.0%} intervals of NEW / BASE, false discovery rate {args.alpha:g} across cells"
    for name, table in tables.items():
        print(format_table(table, title=f"{titles[name]}, {level}" + (" [gating]" if name in gated else " [advisory]")))
    if args.normalise:
        normalised = compare(cell_samples(base, normalise=True, machine=machine),
                             cell_samples(new, normalise=True, machine=machine), **options)
        print(format_table(normalised, title="absolute times normalised by the drift monitor's reference "
                                             "workload (time / reference time) [advisory]"))
    if failures:
        print(f"== cells of the baseline that the new run did not time: {len(failures)}"
              + (" [gating]" if gated else " [advisory]"))
        for failure in failures[:50]:
            print(f"  {failure}")
        if len(failures) > 50:
            print(f"  ... and {len(failures) - 50} more")
    slower = sum(v.status == "slower" for name in gated for v in tables[name])
    print(f"{slower} gating cell(s) slower at factor {args.factor:g}, alpha {args.alpha:g}"
          + (f"; {len(failures)} baseline cell(s) not timed." if failures else "."))
    return 1 if gated and (slower or failures) else 0


def _cmd_history(args) -> int:
    from .compare import CompareInputError
    from .history import build_history
    from .results import NotResultsError

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
        commands = {"list": _cmd_list, "check": _cmd_check, "run": _cmd_run, "report": _cmd_report, "compare": _cmd_compare,
                    "history": _cmd_history}
        return commands[args.command](args)
    except UsageError as exc:
        print(f"nablabench: error: {exc}", file=sys.stderr)
        return 2
