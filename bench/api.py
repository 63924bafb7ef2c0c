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
import inspect
import math
import sys
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Sequence

import pandas as pd

import problems as problem_registry

from bench.core import defaults, environment
from bench.options import Names, UsageError, run_record, validate_check, validate_compare, validate_run


def run(*, preset: str = "default", problems=None, backends: Names | None = None, devices: Names = "cpu",
        dtypes: Names | None = None,
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
    underscores; `devices="auto"` adds CUDA where a backend sees a GPU; `dtypes=("float64", "float32")`
    runs both precisions (None: the preset's, float64 but for `precision`). `out=None` writes a new
    `results/run-<time>.csv`. Rows reach the CSV as each part of a cell ends; an interrupted run
    (Ctrl-C) returns what it has, `interrupted` set, and `resume=True` with the same `out` finishes it.
    `measure="instructions"` (or "cycles") counts the eval cells' calls under callgrind instead of
    timing them (bench.measure.counting; CPU only, solve jobs left out).
    """
    request = validate_run(**locals())  # every option, checked before any work (bench.options)
    from bench.sweep.results import OutLock, OutLocked
    from bench.sweep.runner import plan, run_sweep

    jobs, settings, out, auto = request.jobs, request.settings, request.out, request.auto_devices
    cpus = environment.cpu_count()
    lock = OutLock(out)  # one run writes a results file at a time
    try:
        took_over = lock.acquire()
    except OutLocked as exc:
        raise UsageError(str(exc)) from None
    if took_over:
        print(f"nablabench: note: {took_over}", file=sys.stderr)
    pool = None
    try:
        if executor == "dask":
            pool = _open_cluster(scheduler, workers or max(1, (cpus - 1) // settings.threads))
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
        fits_in_memory(cells)
        print(f"nablabench: {len(cells)} cells, backends {', '.join(settings.backends)}, "
              f"{settings.threads} threads, {pool.description if pool else 'local'} -> {out}", file=sys.stderr)
        executor_here = pool
        if pool is None and measure != "time":  # counts do not move with what runs beside them: a worker a CPU
            from bench.sweep.executors import LocalExecutor

            executor_here = LocalExecutor(description=f"local, up to {cpus} counted workers at once", width=cpus)
        swept = run_sweep(cells, settings, out, resume=resume, progress=progress, executor=executor_here,
                          request=run_record(request))
    finally:
        if pool is not None:
            pool.close()
        lock.release()
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

        print("nablabench: the sweep is done; reading its intervals", file=sys.stderr)
        print(f"nablabench: intervals per cell and variant in {write_summary([out])}", file=sys.stderr)
    if report is not None and not results.interrupted:
        print(f"nablabench: writing the report into {report} (its figures take a while)", file=sys.stderr)
        print(f"nablabench: report written to {build_report(results, out=report)}", file=sys.stderr)
    return results


def fits_in_memory(cells) -> None:
    """Refuse, before any work, a size at which no cell fits in this machine's memory (on the CPU; the
    per-cell guard decides at run time what fits in the memory free then), naming the largest that fits."""
    import psutil

    from bench.sweep.executors import estimated_bytes

    total = psutil.virtual_memory().total
    by_size: dict[int, list] = {}
    for cell in cells:
        if cell.device == "cpu":
            by_size.setdefault(cell.n, []).append(cell)
    for n, at_n in sorted(by_size.items()):
        if all(estimated_bytes(cell) > total for cell in at_n):
            smallest = min(at_n, key=estimated_bytes)
            low, high = 1, n  # the largest size at which the smallest cell fits: bisection
            while low < high:
                middle = (low + high + 1) // 2
                fits = estimated_bytes(replace(smallest, n=middle)) <= total
                low, high = (middle, high) if fits else (low, middle - 1)
            raise UsageError(f"--n {n}: no cell fits in this machine's {total / 2**30:.0f} GiB of memory (the "
                             f"smallest, {smallest.problem} {smallest.derivative} on {smallest.backend}, needs "
                             f"{estimated_bytes(smallest) / 2**30:.3g} GiB); the largest size it fits at is {low}.")


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
    from bench.options import check_folder
    from bench.render.report import build_report as build
    from bench.sweep.results import NotResultsError, read_metadata, read_results

    paths = _paths(results)
    check_folder(Path(out), "--out")
    try:
        read_results(paths), read_metadata(paths)
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

    names, sizes, seed_values, chosen = validate_check(problems, n=n, seeds=seeds, backends=backends)
    return Check(names, run_checks(list(names), sizes=sizes, seeds=seed_values, backend_names=chosen, cost=cost))


@dataclass(frozen=True, eq=False)
class Comparison:
    """Verdicts between two runs: within-run ratios and absolute times, NEW / BASE with intervals (or,
    of two counted runs, instructions per call: `counts`), and the baseline's cells that the new run
    did not time. passed: what `compare`'s exit code says
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
    counts: list | None = None  # two counted runs: a verdict per variant on its instructions per call

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

        if self.counts is not None:
            from bench.analysis.counts import format_counts

            lines = [format_counts(self.counts, factor=self.factor)]
            return "\n".join(lines + [f"failed: {line}" for line in self.failures])
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


def compare(base, new, *, factor: float | None = None, alpha: float = defaults.ALPHA, gate: str = "auto",
            normalise: bool = False) -> Comparison:
    """Verdicts between two runs (Results, a results CSV or pytest-benchmark JSON each): per cell,
    NEW / BASE with the interval the two runs' intervals imply; `slower` where it survives
    Benjamini-Hochberg at false discovery rate `alpha` and its estimate is at least `factor`. `gate`
    picks the verdicts that decide `passed`: auto gates absolute times too where both runs have the
    same setup fingerprint. `factor` defaults to defaults.FACTOR.

    Two counted runs (--measure instructions or cycles) are compared by their instructions per call
    instead (`counts`): `slower` beyond `factor`, which defaults to COUNT_FACTOR there; a version
    change of a backend's libraries is reported as such and not gated."""
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

    base_path, new_path, counts, factor = validate_compare(_paths(base), _paths(new), factor=factor, alpha=alpha,
                                                           gate=gate)
    if counts:
        return _compare_counts(base_path, new_path, factor=factor, alpha=alpha, gate=gate)
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


def _compare_counts(base_path: Path, new_path: Path, *, factor: float, alpha: float, gate: str) -> Comparison:
    from bench.analysis.compare import gate_failures
    from bench.analysis.counts import compare_counts

    counts = compare_counts(base_path, new_path, factor)
    failures = gate_failures(base_path, new_path) if gate != "none" else []
    gated = ("counts",) if gate != "none" else ()
    return Comparison([], [], None, failures, gated, (None, None), factor, alpha, False, counts=counts)




@dataclass(frozen=True, eq=False)
class AbRun:
    """An A/B run: the same cells timed (or counted) for two sides in one run, each pass taking both
    sides of a cell one after the other. verdicts: NEW / BASE per variant with its interval; failures:
    what fails the gate whatever the times; versions: the libraries that differ between the sides."""

    path: Path
    sides: tuple
    verdicts: list
    failures: list[str]
    versions: dict
    factor: float
    alpha: float
    measure: str
    interrupted: bool = False

    @property
    def slower(self) -> list:
        return [v for v in self.verdicts if v.status == "slower"]

    @property
    def passed(self) -> bool:
        """What `nablabench ab`'s exit code says: no variant slower, nothing failed or missing, and a
        run that finished."""
        return not (self.interrupted or self.slower or self.failures)

    def __bool__(self) -> bool:
        return self.passed

    def frame(self) -> pd.DataFrame:
        from bench.analysis.ab import frame

        return frame(self.verdicts)

    def __str__(self) -> str:
        from bench.core.formatting import ratio_interval

        what = "instructions per call" if self.measure != "time" else "time per call, paired per pass"
        lines = [f"A/B ({what}): " + "; ".join(side.describe() for side in self.sides)]
        for worker, moved in sorted(self.versions.items()):
            lines.append(f"  versions of {worker}: " + ", ".join(f"{lib} {a} -> {b}" for lib, (a, b) in moved.items()))
        order = {"slower": 0, "faster": 1, "inconclusive": 2, "same": 3}
        shown = sorted(self.verdicts, key=lambda v: (order[v.status], -abs(math.log(v.estimate))))
        lines.append(f"== NEW / BASE per variant ({len(self.verdicts)}), slower at {self.factor:g}x, false discovery "
                     f"rate {self.alpha:g}; the first 40:")
        for v in shown[:40]:
            interval = ratio_interval(v.estimate, v.lo, v.hi) if self.measure == "time" else f"{v.estimate:.4f}×"
            lines.append(f"  {v.status:12} {interval:24} {v.variant}")
        for failure in self.failures:
            lines.append(f"failed: {failure}")
        counts = {s: sum(v.status == s for v in self.verdicts) for s in order}
        lines.append(f"{counts['slower']} slower, {counts['faster']} faster, {counts['same']} same, "
                     f"{counts['inconclusive']} inconclusive; {len(self.failures)} failure(s)"
                     + ("; interrupted" if self.interrupted else "") + (": PASSED" if self.passed else ": FAILED"))
        return "\n".join(lines)


def ab(base: str, new: str, *, preset: str = "ci", problems=None, backends: Names | None = None,
       derivatives: Names | None = None, n=None, passes: int = defaults.AB_PASSES, factor: float | None = None,
       alpha: float = defaults.ALPHA, measure: str = "time", threads: int = 1, out: str | Path | None = None,
       report: str | Path | None = None, progress: bool = True) -> AbRun:
    """Time (or count) the same cells for two sides in one run and judge NEW against BASE per variant.

    A side is a git ref of this project, `.` (the working tree) or `python:PATH` (another
    environment's interpreter; bench.sweep.sides). Every pass times both sides of each cell one after
    the other, in an order drawn per pass; NEW / BASE of each variant's own time (analytic and
    autodiff alike) comes from the passes' paired ratios, `slower` where it is `factor` or more and
    survives false-discovery control at `alpha` (default factor: defaults.AB_FACTOR for times,
    AB_COUNT_FACTOR for instruction counts). A variant ok on the base side that fails or is missing
    on the new side fails the run, and so does a comparison with nothing in it.
    """
    from bench.analysis.ab import SIDES, versions
    from bench.analysis.ab import failures as ab_failures
    from bench.analysis.ab import verdicts as ab_verdicts
    from bench.sweep.executors import LocalExecutor
    from bench.sweep.results import OutLock, OutLocked, read_metadata, read_results
    from bench.sweep.runner import plan, run_sweep
    from bench.sweep.sides import SideError, resolve

    factor = (defaults.AB_FACTOR if measure == "time" else defaults.AB_COUNT_FACTOR) if factor is None else factor
    if not (isinstance(factor, (int, float)) and factor > 1):
        raise UsageError(f"--factor must be above 1; got {factor}.")
    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha must be in (0, 0.5); got {alpha}.")
    if out is None:
        out = Path("results") / f"ab-{datetime.now():%Y%m%d-%H%M%S}.csv"
    options = {name: p.default for name, p in inspect.signature(run).parameters.items()}
    options.update(preset=preset, problems=problems, backends=backends, derivatives=derivatives, n=n,
                   passes=passes, max_passes=passes, measure=measure, threads=threads, out=out, overwrite=True,
                   report=report, progress=progress)
    request = validate_run(**options)
    try:
        sides = tuple(resolve(str(spec), name) for name, spec in zip(SIDES, (base, new)))
    except SideError as exc:
        raise UsageError(str(exc)) from None
    settings = replace(request.settings, sides=tuple(side.setting() for side in sides))
    cells = [replace(cell, side=side.name) for cell in plan(request.jobs, settings) for side in sides]
    if not cells:
        raise UsageError("Nothing to run: the options removed every cell of the preset.")
    fits_in_memory(cells)
    lock = OutLock(request.out)
    try:
        lock.acquire()
    except OutLocked as exc:
        raise UsageError(str(exc)) from None
    try:
        cpus = environment.cpu_count()
        executor = (LocalExecutor() if measure == "time" else
                    LocalExecutor(description=f"local, up to {cpus} counted workers at once", width=cpus))
        print(f"nablabench ab: {len(cells) // len(sides)} cells on each side, " + "; ".join(s.describe() for s in sides)
              + f" -> {request.out}", file=sys.stderr)
        record = dict(run_record(request), sides=[side.__dict__ for side in sides])
        swept = run_sweep(cells, settings, request.out, resume=False, progress=progress, executor=executor,
                          request=record, fresh_workers_each_pass=True)
    finally:
        lock.release()
    df = read_results([request.out])
    result = AbRun(request.out, sides, ab_verdicts(df, factor=factor, alpha=alpha), ab_failures(df),
                   versions(read_metadata([request.out])), factor, alpha, measure, swept["interrupted"])
    result.frame().to_csv(request.out.with_suffix(".ab.csv"), index=False)
    if report is not None and not result.interrupted:
        from bench.render.ab import build_ab_report

        print(f"nablabench ab: report written to {build_ab_report(result, Path(report))}", file=sys.stderr)
    return result


__all__ = ["AbRun", "Check", "Comparison", "Results", "UsageError", "ab", "build_report", "check", "compare",
           "report", "run"]
