"""nablabench from Python: run, check, compare, report. The command line is a thin layer over these.

    import bench
    r = bench.run(problems=["least_squares"], backends=["numpy", "jax"], derivatives=["grad"], n=[10, 100])
    r.df, r.summary, r.meta, r.findings   # the rows, intervals per variant, metadata, findings in words
    r                                     # in Jupyter: the findings, the summary table, the figures
    bench.check(my_problem)               # vs finite differences and every framework's autodiff
    bench.compare(base, new)              # verdicts between two runs, and whether the gate passes
    bench.report(r, out="reports")        # the HTML report

A problem may be a registered name, a spec (`module:NAME`, `file.py[:NAME]`) or a `problems.Problem`
record made in a notebook cell or script: it reaches the worker processes pickled by value
(problems.define), and no worker imports the notebook. Options are keyword-only and take lists or
the command line's comma-separated strings. Bad input raises UsageError (a ValueError) naming the
valid choices before any work; its messages spell options as the command line does (--max-passes
for max_passes).
"""
from __future__ import annotations

import base64
import math
import sys
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Sequence

import pandas as pd

import backends as backend_registry
import problems as problem_registry

from bench.core import defaults, environment
from bench.measure.solvers import SOLVERS
from bench.sweep.presets import PRESETS, customise, logspace_sizes

TASKS = ("eval", "solve")
DEVICES = ("cpu", "cuda")
EXECUTORS = ("local", "dask")
Names = str | Sequence[str]


class UsageError(ValueError):
    """Bad input, found before any work; the message names the valid choices."""


def _items(value) -> tuple:
    """A comma-separated string (the command line's form) or a sequence, as a tuple of items."""
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(value)


def _names(value: Names, valid, what: str) -> tuple[str, ...]:
    items = _items(value)
    if not items:
        raise UsageError(f"--{what} is empty; expected a comma-separated list of: {', '.join(valid)}.")
    for item in items:
        if item not in valid:
            raise UsageError(f"Unknown {what.rstrip('s')} `{item}`; expected one of: {', '.join(valid)}.")
    return items


def _problems(value) -> tuple[str, ...]:
    """Problem names: registered names, specs that load problems from outside (some.module:NAME,
    path/to/file.py:NAME, path/to/file.py) and Problem records (defined here, by value)."""
    chosen = []
    for item in [value] if isinstance(value, problem_registry.Problem) else _items(value):
        if isinstance(item, problem_registry.Problem):
            try:
                chosen.append(problem_registry.define(item))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            except Exception as exc:  # cloudpickle cannot take what f closes over (a lock, a file)
                raise UsageError(f"Problem `{item.name}` cannot travel to the worker processes: "
                                 f"{type(exc).__name__}: {exc}.") from None
        elif not isinstance(item, str):
            raise UsageError(f"A problem is a name, a spec or a problems.Problem record; got {type(item).__name__}.")
        elif problem_registry.is_spec(item):
            try:
                chosen.extend(problem_registry.load(item))
            except (ValueError, TypeError) as exc:
                raise UsageError(str(exc)) from None
        elif item in problem_registry.names():
            chosen.append(item)
        else:
            raise UsageError(f"Unknown problem `{item}`; expected one of: {', '.join(problem_registry.names())}, "
                             "or some.module:NAME, path/to/file.py:NAME, path/to/file.py, or a problems.Problem.")
    if not chosen:
        raise UsageError("--problems is empty; expected names or specs (module:NAME, file.py[:NAME]).")
    return tuple(dict.fromkeys(chosen))


def _sizes(value) -> tuple[int, ...]:
    sizes = []
    for item in _items(str(value) if isinstance(value, int) else value):
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise UsageError(f"--n: `{item}` is not a number; expected integers >= 1, e.g. 10,100,1000.") from None
        if not number.is_integer() or number < 1:
            raise UsageError(f"--n: `{item}` is not an integer >= 1.")
        sizes.append(int(number))
    if not sizes:
        raise UsageError("--n is empty; expected integers >= 1, e.g. 10,100,1000.")
    return tuple(sorted(set(sizes)))


def _logspace(value) -> tuple[int, ...]:
    parts = _items(value)
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except (TypeError, ValueError):
        raise UsageError(f"--n-logspace: `{value}` is not START,STOP,NUM (e.g. 1,4,50).") from None
    if num < 1 or stop < start or start < 0:
        raise UsageError(f"--n-logspace: `{value}` needs 0 <= START <= STOP and NUM >= 1.")
    return logspace_sizes(start, stop, num)


def _positive(value: float, what: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a positive number; got {value}.")


def _at_least_one(value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{what} must be >= 1; got {value}.")


def _available(names: tuple[str, ...]) -> None:
    for name in names:
        ok, reason = backend_registry.get(name).available()
        if not ok:
            raise UsageError(f"Backend `{name}` is unavailable: {reason}.")


def _executor_options(executor: str, scheduler: str | None, workers: int | None) -> None:
    if executor not in EXECUTORS:
        raise UsageError(f"Unknown executor `{executor}`; expected one of: {', '.join(EXECUTORS)}.")
    if executor == "local":
        if scheduler or workers is not None:
            raise UsageError("--scheduler and --workers need --executor dask; expected --executor "
                             f"{' or '.join(EXECUTORS)}, with --scheduler ADDRESS or --workers N for dask.")
        return
    if scheduler and workers is not None:
        raise UsageError("--scheduler and --workers exclude each other: connect to a running Dask cluster "
                         "(--scheduler ADDRESS) or start one here (--workers N).")
    _at_least_one(workers, "--workers")
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("--executor dask needs dask and distributed: pip install nablabench[dask].") from None


def _probe_devices(name: str) -> list[str]:
    """A backend's devices, asked in a short-lived process (no GPU context stays in this one)."""
    import os
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


def _out_path(out, resume: bool, overwrite: bool) -> Path:
    if out is None:  # from Python: a new file each call, as `make bench` names its own
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = next(p for i in range(1, 10**6) if not (p := Path("results") / (
            f"run-{stamp}.csv" if i == 1 else f"run-{stamp}-{i}.csv")).exists())
    out = Path(out)
    if out.suffix != ".csv":
        raise UsageError(f"--out must name a .csv file; got `{out}`.")
    if out.exists() and not (resume or overwrite):
        raise UsageError(f"`{out}` exists; pass --resume to continue it or --overwrite to replace it.")
    if resume and out.exists() and out.stat().st_size > 0:
        from bench.sweep.results import COLUMNS

        with open(out, encoding="utf-8") as fh:
            if fh.readline().strip().split(",") != list(COLUMNS):  # rows appended to it would not line up
                raise UsageError(f"`{out}` has the columns of another nablabench version; --overwrite it or "
                                 "write a new --out.")
    _check_writable(out)
    return out


def run(*, preset: str = "default", problems=None, backends: Names | None = None, devices: Names = "cpu",
        modes: Names = ("analytic", "autodiff"), tasks: Names | None = None, derivatives: Names | None = None,
        solvers: Names | None = None, n=None, n_logspace=None, repeats: int | None = None, rounds: int | None = None,
        max_rounds: int = defaults.MAX_ROUNDS, sample_time: float = defaults.SAMPLE_TIME_S,
        passes: int | None = None, max_passes: int | None = None, target: float = defaults.TARGET,
        eps: float = defaults.EPS, seed: int = defaults.SEED, threads: int | None = None,
        eval_budget: float = defaults.EVAL_BUDGET_S, solve_budget: float = defaults.SOLVE_BUDGET_S,
        memory_fraction: float = defaults.MEMORY_FRACTION, rtol: float = defaults.RTOL,
        out: str | Path | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
        executor: str = "local", scheduler: str | None = None, workers: int | None = None,
        report: str | Path | None = None, measure: str = "time") -> "Results":
    """Run a sweep: check every derivative, then time it; returns its Results.

    The options are those of `nablabench run` (see `nablabench run --help`), by the same names with
    underscores; `devices="auto"` adds CUDA where a backend sees a GPU. `out=None` writes a new
    `results/run-<time>.csv`. Rows reach the CSV as each part of a cell ends; an interrupted run
    (Ctrl-C) returns what it has, `interrupted` set, and `resume=True` with the same `out` finishes it.
    `measure="instructions"` (or "cycles") counts the eval cells' calls under callgrind instead of
    timing them (bench.measure.counting; CPU only, solve jobs left out).
    """
    from bench.sweep.executors import Settings
    from bench.sweep.runner import plan, run_sweep

    if preset not in PRESETS:
        raise UsageError(f"Unknown preset `{preset}`; expected one of: {', '.join(sorted(PRESETS))}.")
    if n is not None and n_logspace is not None:
        raise UsageError("--n and --n-logspace exclude each other.")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other.")
    if measure not in defaults.MEASURES:
        raise UsageError(f"Unknown --measure `{measure}`; expected one of: {', '.join(defaults.MEASURES)}.")
    if measure != "time":
        from bench.measure.callgrind import missing

        if missing():
            raise UsageError(f"--measure {measure}: {missing()}.")
        if _items(devices) not in (("cpu",), ("auto",)):
            raise UsageError(f"--measure {measure} counts work on the CPU only (callgrind sees no GPU work); "
                             "use --devices cpu.")
        devices = "cpu"
        # callgrind collects on the thread that switched collection on (each thread has its own switch,
        # off at its start): a worker's main thread, so a count is of one thread's work
        if threads not in (None, 1):
            raise UsageError(f"--measure {measure} counts one thread (callgrind collects only on the thread that "
                             f"switches collection on); use --threads 1, not {threads}.")
        threads = 1
    _executor_options(executor, scheduler, workers)
    problem_names = _problems(problems) if problems is not None else None
    task_names = _names(tasks, TASKS, "tasks") if tasks is not None else None
    kinds = _names(derivatives, backend_registry.DERIVATIVES, "derivatives") if derivatives is not None else None
    solver_names = _names(solvers, tuple(SOLVERS), "solvers") if solvers is not None else None
    mode_names = _names(modes, backend_registry.MODES, "modes")
    auto = _items(devices) == ("auto",)
    device_names = DEVICES if auto else _names(devices, DEVICES, "devices")
    sizes = _sizes(n) if n is not None else _logspace(n_logspace) if n_logspace is not None else None
    for value, what in ((repeats, "--repeats"), (rounds, "--rounds"), (passes, "--passes"),
                        (max_passes, "--max-passes")):
        _at_least_one(value, what)
    if max_rounds < 1 or (rounds is not None and max_rounds < rounds):
        raise UsageError(f"--max-rounds must be >= 1 and at least --rounds; got {max_rounds}.")
    if passes is not None and max_passes is not None and max_passes < passes:
        raise UsageError(f"--max-passes ({max_passes}) must be at least --passes ({passes}).")
    for value, what in ((eps, "--eps"), (sample_time, "--sample-time"), (target, "--target"),
                        (eval_budget, "--eval-budget"), (solve_budget, "--solve-budget"), (rtol, "--rtol")):
        _positive(value, what)
    if not 0 < memory_fraction <= 1:
        raise UsageError(f"--memory-fraction must be in (0, 1]; got {memory_fraction}.")
    threads = environment.default_threads() if threads is None else threads
    cpus = environment.cpu_count()
    if threads < 1 or (threads > cpus and not scheduler):  # a cluster's machines have their own CPUs
        raise UsageError(f"--threads must be between 1 and {cpus} (the CPUs this process may use); got {threads}.")

    if backends is not None:
        chosen = _names(backends, backend_registry.names(), "backends")
        _available(chosen)
    else:
        # every installed backend, but those that come only with certain presets (their record's `presets`)
        wanted = [b for b in backend_registry.names() if backend_registry.get(b).presets is None or
                  preset in backend_registry.get(b).presets]
        chosen = tuple(b for b in wanted if backend_registry.get(b).available()[0])
        for name in sorted(set(wanted) - set(chosen)):
            print(f"note: backend `{name}` skipped: {backend_registry.get(name).available()[1]}", file=sys.stderr)
    with_cuda: tuple[str, ...] = ()
    if "cuda" in device_names:
        capable = [b for b in chosen if "cuda" in backend_registry.get(b).accelerators]
        # on a cluster, the workers that declare a `gpu` resource have the GPUs (checked when connected)
        with_cuda = tuple(b for b in capable if executor == "dask" or "cuda" in _probe_devices(b))
        if not with_cuda and auto:
            device_names = ("cpu",)
        elif not with_cuda:
            raise UsageError("Device `cuda` requested, but no selected backend sees a CUDA GPU here "
                             f"(of those selected, only {', '.join(capable) or 'none'} can use one); "
                             "use --devices cpu.")
        for name in sorted(set(chosen) - set(with_cuda)):
            print(f"note: backend `{name}` runs on the CPU only here", file=sys.stderr)
    out = _out_path(out, resume, overwrite)
    if resume and out.exists():
        from bench.sweep.results import read_metadata

        earlier = {(block.get("settings") or {}).get("measure", "time") for block in read_metadata([out]).values()}
        if earlier - {measure}:
            raise UsageError(f"`{out}` was a run of --measure {', '.join(sorted(earlier))}: resume it with the same "
                             f"--measure, not {measure}.")

    if kinds and problem_names and (task_names is None or "eval" in task_names):
        if not any(d in problem_registry.get(p).derivatives for p in problem_names for d in kinds):
            defined = "; ".join(f"{p}: {', '.join(problem_registry.get(p).derivatives)}" for p in problem_names)
            raise UsageError(f"No selected problem defines --derivatives {','.join(kinds)} ({defined}).")
    jobs = customise(PRESETS[preset], tasks=task_names, problems=problem_names, derivatives=kinds,
                     solvers=solver_names, sizes=sizes, repeats=repeats, rounds=rounds, passes=passes,
                     max_passes=max_passes)
    if measure != "time" and any(job.task == "solve" for job in jobs):
        jobs = tuple(job for job in jobs if job.task == "eval")
        print(f"note: --measure {measure} counts eval cells only: the preset's solve jobs are left out",
              file=sys.stderr)
    if not jobs:
        raise UsageError("Nothing to run: the options removed every job of the preset.")
    settings = Settings(backends=chosen, devices=device_names, modes=mode_names, eps=eps, seed=seed, threads=threads,
                        eval_budget_s=eval_budget, solve_budget_s=solve_budget, memory_fraction=memory_fraction,
                        rtol=rtol, min_sample_s=sample_time, target=target, max_rounds=max_rounds,
                        cuda_backends=with_cuda, measure=measure)

    pool = _open_cluster(scheduler, workers or max(1, (cpus - 1) // threads)) if executor == "dask" else None
    try:
        if pool is not None and "cuda" in settings.devices and not pool.gpus:
            if not auto:
                raise UsageError("Device `cuda` requested, but no Dask worker declares a `gpu` resource; start GPU "
                                 "workers with --resources bench=1,gpu=1, or use --devices cpu.")
            settings = replace(settings, devices=("cpu",), cuda_backends=())
        cells = plan(jobs, settings)
        if not cells:
            defined = "; ".join(f"{p}: {', '.join(problem_registry.get(p).derivatives)}"
                                for p in sorted({p for job in jobs for p in job.problems}))
            raise UsageError("Nothing to run: no backend supports the selected modes and devices, or no "
                             f"selected problem defines the selected derivatives ({defined}).")
        print(f"nablabench: {len(cells)} cells, backends {', '.join(settings.backends)}, "
              f"{settings.threads} threads, {pool.description if pool else 'local'} -> {out}", file=sys.stderr)
        executor_here = pool
        if pool is None and measure != "time":  # counts do not move with what runs beside them: a worker a CPU
            from bench.sweep.executors import LocalExecutor

            executor_here = LocalExecutor(description=f"local, up to {cpus} counted workers at once", width=cpus)
        swept = run_sweep(cells, settings, out, resume=resume, progress=progress, executor=executor_here)
    finally:
        if pool is not None:
            pool.close()
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(swept["statuses"].items())) or "no rows"
    print(f"nablabench: rows by status: {counts}", file=sys.stderr)
    results = Results(out, interrupted=swept["interrupted"])
    if out.exists() and out.stat().st_size > 0 and measure != "time":
        from bench.analysis.counts import count_table
        from bench.analysis.summary import summary_path

        try:
            count_table(out).to_csv(summary_path(out), index=False)
            print(f"nablabench: instructions per call per variant in {summary_path(out)}", file=sys.stderr)
        except ValueError as exc:  # nothing counted: every variant failed its check, or was skipped
            print(f"nablabench: {exc}; no report", file=sys.stderr)
            return results
        if report is not None and not results.interrupted:
            print(f"nablabench: report written to {build_report(results, out=report)}", file=sys.stderr)
        return results
    if out.exists() and out.stat().st_size > 0:
        from bench.analysis.summary import write_summary

        print(f"nablabench: intervals per cell and variant in {write_summary([out])}", file=sys.stderr)
    if report is not None and not results.interrupted:
        print(f"nablabench: report written to {build_report(results, out=report)}", file=sys.stderr)
    return results


def _open_cluster(scheduler: str | None, workers: int):
    from bench.sweep.cluster import ClusterError, DaskExecutor

    try:
        return DaskExecutor.open(scheduler, workers)
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


def _paths(results) -> list[Path]:
    """Results, a CSV path, or a list of either, as the CSV paths."""
    if isinstance(results, (Results, str, Path)):
        results = [results]
    return [p for r in results for p in (r.paths if isinstance(r, Results) else (Path(r),))]


@dataclass(frozen=True, eq=False)
class Results:
    """One run (or several CSVs read together): its rows, metadata, summary and findings.

    df: the tidy rows (results CSV); meta: run id -> its metadata; summary: one row per cell and
    variant with its time and paired ratio and their 95% intervals (NAME.summary.csv); findings:
    what the report opens on, in sentences; warning: why its times are not to be trusted, if they
    are not. In Jupyter it shows all of them and the headline figures.
    """

    path: Path | Sequence[Path]
    interrupted: bool = False

    @classmethod
    def load(cls, *paths: str | Path) -> "Results":
        """Results of CSVs already written (raises UsageError for a file that is not one)."""
        from bench.sweep.results import NotResultsError, read_results

        found = tuple(Path(p) for p in paths)
        if not found:
            raise UsageError("Results.load needs at least one results CSV.")
        try:
            read_results(found)
        except NotResultsError as exc:
            raise UsageError(str(exc)) from None
        return cls(found if len(found) > 1 else found[0])

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(map(Path, self.path)) if isinstance(self.path, (list, tuple)) else (Path(self.path),)

    @cached_property
    def df(self) -> pd.DataFrame:
        from bench.sweep.results import read_results

        return read_results(self.paths)

    @cached_property
    def meta(self) -> dict:
        from bench.sweep.results import read_metadata

        return read_metadata(self.paths)

    @cached_property
    def summary(self) -> pd.DataFrame:
        from bench.analysis.floors import roofs_of
        from bench.analysis.summary import summary_table

        return summary_table(self.df, roofs_of(self.meta))

    @cached_property
    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        from bench.analysis.summary import autodiff_ratios, cell_stats, grad_over_f

        stats = cell_stats(self.df)
        return stats, autodiff_ratios(self.df), grad_over_f(stats)

    @cached_property
    def findings(self) -> list[str]:
        """The sentences the report opens on (bench.analysis.findings), the floor's among them."""
        from bench.analysis.findings import findings
        from bench.analysis.floors import roofs_of, with_floors

        stats, ratios, gf = self._tables
        roofs = roofs_of(self.meta)
        return [s.text for s in findings(self.df, stats, ratios, gf, with_floors(stats, roofs), roofs)]

    @cached_property
    def warning(self) -> str | None:
        """What the report's warning says, or None."""
        from bench.analysis.findings import trust
        from bench.render.report import shared_hosts

        stats, ratios, _ = self._tables
        return " ".join(filter(None, [trust(self.df, stats, ratios), shared_hosts(self.df)])) or None

    def status_counts(self) -> dict[str, int]:
        return self.df["status"].value_counts().to_dict()

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.status_counts().items()))
        head = f"Results({', '.join(map(str, self.paths))}: {len(self.df)} rows; {counts}"
        return head + (", interrupted)" if self.interrupted else ")")

    def figures(self) -> dict[str, bytes]:
        """The report's headline and ratio figures of this run, as PNG bytes by file name."""
        from bench.render import plots

        stats, ratios, _ = self._tables
        with tempfile.TemporaryDirectory() as folder:
            names = plots.headline(stats, Path(folder)) + plots.ratios(ratios, Path(folder))
            return {name: (Path(folder) / name).read_bytes() for name in names}

    def _repr_html_(self) -> str:
        from bench.render.report import display_table

        images = [f"data:image/png;base64,{base64.b64encode(png).decode()}" for png in self.figures().values()]
        return _template("notebook.html.j2").render(
            paths=self.paths, counts=sorted(self.status_counts().items()), interrupted=self.interrupted,
            warning=self.warning, findings=self.findings, images=images,
            table=display_table(self.summary).to_html(index=False, border=0, na_rep="–", classes="data"))


def _template(name: str):
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape()).get_template(name)


def build_report(results, *, out: str | Path = "reports") -> Path:
    """The HTML report of Results or results CSVs into the folder `out`; returns its index.html. Of one
    counted run (--measure instructions): its instruction counts (bench.analysis.counts.build_count_report)."""
    from bench.analysis.counts import build_count_report, counted
    from bench.render.report import build_report as build
    from bench.sweep.results import NotResultsError, read_results

    paths = _paths(results)
    try:
        read_results(paths)
    except NotResultsError as exc:
        raise UsageError(str(exc)) from None
    kinds = {counted(p) for p in paths}
    if kinds == {True}:
        if len(paths) > 1:
            raise UsageError("A counted run's report is of one run; compare two with `nablabench compare BASE NEW`, "
                             "or follow several with `nablabench history`.")
        return build_count_report(paths[0], Path(out))
    if len(kinds) > 1:
        raise UsageError("These CSVs mix counted runs (--measure instructions) with timed ones: report them apart.")
    return build(paths, Path(out))


report = build_report


@dataclass(frozen=True, eq=False)
class Check:
    """`check`'s findings: every derivative against finite differences, consistency and every
    backend's autodiff. ok: every check that ran agreed; failing: `problem derivative` of each that
    did not; table: the grid that `nablabench check` prints; not_run: why each empty cell is empty."""

    problems: tuple[str, ...]
    findings: list = field(repr=False)

    @property
    def failing(self) -> list[str]:
        from bench.measure.check import failing_derivatives

        return failing_derivatives(self.findings)

    @property
    def ok(self) -> bool:
        return not self.failing

    def __bool__(self) -> bool:
        return self.ok

    @property
    def table(self) -> pd.DataFrame:
        from bench.measure.check import grid

        rows = [{"problem": p, "derivative": d, **cells} for p, by_kind in grid(self.findings).items()
                for d, cells in by_kind.items()]
        return pd.DataFrame(rows).set_index(["problem", "derivative"])

    @property
    def not_run(self) -> list[str]:
        from bench.measure.check import not_run

        return not_run(self.findings)

    def __str__(self) -> str:
        from bench.measure.check import table

        return table(self.findings)

    def __repr__(self) -> str:
        return f"Check(ok={self.ok}, failing={self.failing})"

    def _repr_html_(self) -> str:
        return _template("check.html.j2").render(ok=self.ok, failing=self.failing, not_run=self.not_run,
                                                 table=self.table.to_html(border=0, classes="data"))


def check(problems, *, n=(8, 32), seeds=(0, 1), backends: Names | None = None, cost: bool = False) -> Check:
    """Check problems' hand-derived derivatives (names, specs or Problem records): against central
    finite differences, for consistency, and against every installed backend's autodiff (or those
    named); with `cost`, each declared cost model against a measurement. Returns a Check, true when
    every derivative agrees."""
    from bench.measure.check import check as run_checks

    names = _problems(problems)
    sizes = _sizes(n)
    try:
        seed_values = tuple(int(s) for s in _items(str(seeds) if isinstance(seeds, int) else seeds))
    except (TypeError, ValueError):
        raise UsageError(f"--seeds: `{seeds}` is not a comma-separated list of integers.") from None
    chosen = _names(backends, backend_registry.names(), "backends") if backends is not None else None
    _available(chosen or ())
    return Check(names, run_checks(list(names), sizes=sizes, seeds=seed_values, backend_names=chosen, cost=cost))


@dataclass(frozen=True, eq=False)
class Comparison:
    """Verdicts between two runs: within-run ratios and absolute times, NEW / BASE with intervals,
    and the baseline's cells that the new run did not time. passed: what `compare`'s exit code says
    (no gated cell slower, no baseline cell missing or failed)."""

    ratios: list
    absolute: list
    normalised: list | None
    failures: list[str]
    gated: tuple[str, ...]
    fingerprints: tuple
    factor: float
    alpha: float
    auto: bool

    @property
    def slower(self) -> int:
        return sum(v.status == "slower" for name in self.gated for v in getattr(self, name))

    @property
    def passed(self) -> bool:
        return not (self.gated and (self.slower or self.failures))

    def __bool__(self) -> bool:
        return self.passed

    def frame(self, which: str = "ratios") -> pd.DataFrame:
        """One row per cell: its verdict, NEW / BASE and its interval, each run's estimate and passes."""
        return pd.DataFrame([v.__dict__ for v in getattr(self, which)])

    def __str__(self) -> str:
        from bench.analysis.compare import format_table

        lines = []
        if self.auto:
            same = self.fingerprints[0] is not None and self.fingerprints[0] == self.fingerprints[1]
            setups = "the same setup" if same else "different or unknown setups, so absolute times are advisory"
            lines.append(f"gate: {' and '.join(self.gated)} (setup fingerprints {self.fingerprints[0]} and "
                         f"{self.fingerprints[1]}: {setups})")
        level = f"{1 - self.alpha:.0%} intervals of NEW / BASE, false discovery rate {self.alpha:g} across cells"
        titles = {"ratios": "within-run ratios (autodiff / analytic, paired per round)", "absolute": "absolute times"}
        for name, title in titles.items():
            lines.append(format_table(getattr(self, name), title=f"{title}, {level}"
                                      + (" [gating]" if name in self.gated else " [advisory]")))
        if self.normalised is not None:
            lines.append(format_table(self.normalised, title="absolute times normalised by the drift monitor's "
                                                             "reference workload (time / reference time) [advisory]"))
        if self.failures:
            lines.append(f"== cells of the baseline that the new run did not time: {len(self.failures)}"
                         + (" [gating]" if self.gated else " [advisory]"))
            lines += [f"  {failure}" for failure in self.failures[:50]]
            if len(self.failures) > 50:
                lines.append(f"  ... and {len(self.failures) - 50} more")
        lines.append(f"{self.slower} gating cell(s) slower at factor {self.factor:g}, alpha {self.alpha:g}"
                     + (f"; {len(self.failures)} baseline cell(s) not timed." if self.failures else "."))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(str(self))}</pre>"


GATES = ("auto", "ratios", "absolute", "both", "none")


def compare(base, new, *, factor: float = defaults.FACTOR, alpha: float = defaults.ALPHA, gate: str = "auto",
            normalise: bool = False) -> Comparison:
    """Verdicts between two runs (Results, a results CSV or pytest-benchmark JSON each): per cell,
    NEW / BASE with the interval the two runs' intervals imply; `slower` where it survives
    Benjamini-Hochberg at false discovery rate `alpha` and its estimate is at least `factor`. `gate`
    picks the verdicts that decide `passed`: auto gates absolute times too where both runs have the
    same setup fingerprint."""
    from bench.analysis.compare import (
        CompareInputError,
        by_machine,
        cell_samples,
        gate_failures,
        load_samples,
        ratio_samples,
        setup_fingerprint,
    )
    from bench.analysis.compare import compare as verdicts
    from bench.sweep.results import NotResultsError

    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha must be in (0, 0.5); got {alpha}.")
    if not factor > 1:
        raise UsageError(f"--factor must be above 1; got {factor}.")
    if gate not in GATES:
        raise UsageError(f"Unknown gate `{gate}`; expected one of: {', '.join(GATES)}.")
    if len(_paths(base)) != 1 or len(_paths(new)) != 1:
        raise UsageError("compare takes one run a side (one results CSV or pytest-benchmark JSON each).")
    (base_path,), (new_path,) = _paths(base), _paths(new)
    try:
        base_samples, new_samples = load_samples(base_path), load_samples(new_path)
        prints = setup_fingerprint(base_path), setup_fingerprint(new_path)
        failures = gate_failures(base_path, new_path)
    except (CompareInputError, NotResultsError) as exc:
        raise UsageError(str(exc)) from None
    same_setup = prints[0] is not None and prints[0] == prints[1]
    gated = {"auto": ("ratios", "absolute") if same_setup else ("ratios",), "ratios": ("ratios",),
             "absolute": ("absolute",), "both": ("ratios", "absolute"), "none": ()}[gate]
    options = dict(factor=factor, alpha=alpha)
    machine = by_machine(base_samples, new_samples)  # a run over several machines: cells match per machine
    ratios = verdicts(ratio_samples(base_samples, machine=machine), ratio_samples(new_samples, machine=machine),
                      **options)
    absolute = verdicts(cell_samples(base_samples, machine=machine), cell_samples(new_samples, machine=machine),
                        **options)
    normalised = verdicts(cell_samples(base_samples, normalise=True, machine=machine),
                          cell_samples(new_samples, normalise=True, machine=machine), **options) if normalise else None
    return Comparison(ratios, absolute, normalised, failures, gated, prints, factor, alpha, gate == "auto")


__all__ = ["Check", "Comparison", "Results", "UsageError", "build_report", "check", "compare", "report", "run"]
