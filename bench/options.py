"""Every option of a run, a check or a comparison validated before any work: UsageError (a ValueError)
names the option as the command line spells it (--max-passes for max_passes) and the valid choices.
bench.api orchestrates what this accepts; the command line reaches it through bench.api."""
from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

import backends as backend_registry
import problems as problem_registry

from bench.core import defaults, environment, precision
from bench.measure.solvers import SOLVERS
from bench.sweep.executors import Settings
from bench.sweep.presets import PRESET_DTYPES, PRESETS, Job, customise, logspace_sizes

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


def problem_names(value) -> tuple[str, ...]:
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
        if number > defaults.MAX_N:
            raise UsageError(f"--n: `{item}` is above {defaults.MAX_N:.0e}, the largest size a run takes.")
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
    if 10**stop > defaults.MAX_N or num > 10_000:
        raise UsageError(f"--n-logspace: `{value}` reaches past {defaults.MAX_N:.0e}, the largest size a run takes, "
                         "or asks for more than 10000 sizes.")
    return logspace_sizes(start, stop, num)


def _integer(value, what: str) -> int | None:
    """An integer option as Python or the command line gives it (3, "3"); None stays None. A bool, a
    fraction or text is refused."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise UsageError(f"{what} must be an integer; got {value!r}.")


def _number(value, what: str) -> float:
    """A real option as Python or the command line gives it (0.01, "1e-2")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise UsageError(f"{what} must be a number; got {value!r}.")


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


def check_folder(path: Path, what: str) -> None:
    """An output folder (the report's): a folder or nothing yet, and writable."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} `{path}` is a file; it must name a folder (the report writes index.html and its "
                         "figures into it).")
    probe = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".nablabench-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"Cannot write {what} `{path}`: {exc.strerror or exc}.") from None


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

        with open(out, encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
        if not header.endswith("\n"):  # cut inside its header: no row was written
            raise UsageError(f"`{out}` ends inside its header (cut mid-write before any row): there is nothing to "
                             "resume; --overwrite it or write a new --out.")
        if header.strip().split(",") != list(COLUMNS):  # rows appended to it would not line up
            raise UsageError(f"`{out}` has the columns of another nablabench version; --overwrite it or "
                             "write a new --out.")
    _check_writable(out)
    return out


@dataclass(frozen=True)
class RunRequest:
    """A run's options once validated: what bench.api.run plans, runs and reports."""

    jobs: tuple[Job, ...]
    settings: Settings
    out: Path
    auto_devices: bool  # devices "auto": CUDA only where a backend (or a Dask worker) has a GPU
    preset: str


def validate_run(*, preset, problems, backends, devices, dtypes, modes, tasks, derivatives, solvers, n, n_logspace,
                 repeats, rounds, max_rounds, sample_time, passes, max_passes, target, eps, seed, threads, eval_budget,
                 solve_budget, memory_fraction, rtol, out, resume, overwrite, progress, executor, scheduler, workers,
                 report, measure) -> RunRequest:
    """bench.api.run's options (the same names), validated; UsageError before any work."""
    repeats, rounds, max_rounds, passes, max_passes, seed, threads, workers = (
        _integer(value, what) for value, what in (
            (repeats, "--repeats"), (rounds, "--rounds"), (max_rounds, "--max-rounds"), (passes, "--passes"),
            (max_passes, "--max-passes"), (seed, "--seed"), (threads, "--threads"), (workers, "--workers")))
    sample_time, target, eps, eval_budget, solve_budget, memory_fraction, rtol = (
        _number(value, what) for value, what in (
            (sample_time, "--sample-time"), (target, "--target"), (eps, "--eps"), (eval_budget, "--eval-budget"),
            (solve_budget, "--solve-budget"), (memory_fraction, "--memory-fraction"), (rtol, "--rtol")))
    if seed < 0:
        raise UsageError(f"--seed must be >= 0 (numpy's seeds are); got {seed}.")
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
    chosen_problems = problem_names(problems) if problems is not None else None
    task_names = _names(tasks, TASKS, "tasks") if tasks is not None else None
    kinds = _names(derivatives, backend_registry.DERIVATIVES, "derivatives") if derivatives is not None else None
    solver_names = _names(solvers, tuple(SOLVERS), "solvers") if solvers is not None else None
    mode_names = _names(modes, backend_registry.MODES, "modes")
    auto = _items(devices) == ("auto",)
    device_names = DEVICES if auto else _names(devices, DEVICES, "devices")
    dtype_names = _names(PRESET_DTYPES.get(preset, precision.DEFAULT) if dtypes is None else dtypes,
                         precision.DTYPES, "dtypes")
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
    if report is not None:
        check_folder(Path(report), "--report")
    if resume and not out.exists():
        print(f"nablabench: note: `{out}` does not exist; --resume starts a new run there", file=sys.stderr)

    if kinds and chosen_problems and (task_names is None or "eval" in task_names):
        if not any(d in problem_registry.get(p).derivatives for p in chosen_problems for d in kinds):
            defined = "; ".join(f"{p}: {', '.join(problem_registry.get(p).derivatives)}" for p in chosen_problems)
            raise UsageError(f"No selected problem defines --derivatives {','.join(kinds)} ({defined}).")
    jobs = customise(PRESETS[preset], tasks=task_names, problems=chosen_problems, derivatives=kinds,
                     solvers=solver_names, sizes=sizes, repeats=repeats, rounds=rounds, passes=passes,
                     max_passes=max_passes)
    if measure != "time" and any(job.task == "solve" for job in jobs):
        jobs = tuple(job for job in jobs if job.task == "eval")
        print(f"note: --measure {measure} counts eval cells only: the preset's solve jobs are left out",
              file=sys.stderr)
    if not jobs:
        raise UsageError("Nothing to run: the options removed every job of the preset.")
    settings = Settings(backends=chosen, devices=device_names, dtypes=dtype_names, modes=mode_names, eps=eps,
                        seed=seed, threads=threads,
                        eval_budget_s=eval_budget, solve_budget_s=solve_budget, memory_fraction=memory_fraction,
                        rtol=rtol, min_sample_s=sample_time, target=target, max_rounds=max_rounds,
                        cuda_backends=with_cuda, measure=measure)
    request = RunRequest(jobs, settings, out, auto, preset)
    if resume and out.exists() and out.stat().st_size > 0:
        _same_run(out, request)
    return request


def run_record(request: RunRequest) -> dict:
    """What a run records of the options that shape its numbers (its metadata's `request`), as JSON
    holds it: a resume must match it (bench.options._same_run)."""
    import dataclasses
    import json

    settings = dataclasses.asdict(request.settings)
    if request.settings.dtypes == precision.DEFAULT:  # as runs before the dtype axis recorded it: their
        del settings["dtypes"]  # resumes and the shipped progress logs (bench.sweep.eta) still match
    record = {"preset": request.preset, "jobs": [dataclasses.asdict(job) for job in request.jobs],
              "settings": settings}
    return json.loads(json.dumps(record, default=str))


# Facts of the machine and the libraries a resumed run must share with the run it continues.
SAME_ENVIRONMENT = ("machine_fingerprint", "versions", "python_executable")


def _same_run(out: Path, request: RunRequest) -> None:
    """A resume continues the same run or none: its preset, jobs and settings, the machine and the
    library versions as the run recorded them at its start, and the CSV's schema version."""
    from bench.sweep.results import SCHEMA_VERSION, NotResultsError, read_metadata, read_results

    try:
        versions = set(read_results([out])["schema_version"].dropna().astype(int))
        blocks = sorted(read_metadata([out]).values(), key=lambda m: m.get("started") or "")
    except NotResultsError as exc:
        raise UsageError(f"Cannot resume: {exc}") from None
    if versions - {SCHEMA_VERSION}:
        raise UsageError(f"`{out}` holds rows of schema version {', '.join(map(str, sorted(versions)))}, this "
                         f"nablabench writes {SCHEMA_VERSION}: --overwrite it or write a new --out.")
    if not blocks:
        raise UsageError(f"`{out}` has no metadata (`{out.with_suffix('.meta.json')}`) to say how it was run: "
                         "--overwrite it or write a new --out.")
    first, now = blocks[0], run_record(request)
    then = first.get("request") or {"settings": first.get("settings") or {}}  # older runs recorded settings only
    differences = [f"{name}: {then['settings'].get(name)!r} then, {value!r} now"
                   if name != "measure" else  # what a counted run's user is told to do
                   f"it was a run of --measure {then['settings'][name]}: resume it with the same --measure, "
                   f"not {value}"
                   for name, value in now["settings"].items()
                   if name in then["settings"] and then["settings"][name] != value]
    if "preset" in then and then["preset"] != now["preset"]:
        differences.append(f"preset: {then['preset']!r} then, {now['preset']!r} now")
    elif "jobs" in then and _how(then["jobs"]) != _how(now["jobs"]):
        differences.append("how the jobs time their cells (rounds, passes, repeats): "
                           + _jobs_difference(_how(then["jobs"]), _how(now["jobs"])))
    here = environment.collect(request.settings.threads)
    differences += [f"{name}: {_short(first.get(name))} then, {_short(here.get(name))} now"
                    for name in SAME_ENVIRONMENT if name in first and first.get(name) != here.get(name)]
    if differences:
        raise UsageError(f"`{out}` was run with other settings, and a resume continues the same run: "
                         + "; ".join(differences) + ". Resume it with its own options, or --overwrite it (or write "
                         "a new --out) to start a new run.")


# What of a job shapes how its cells are timed: a resume must keep them. Which cells it runs (problems,
# derivatives, sizes) may grow: new cells are timed as the first run timed its own, and a resume with a
# larger size learns which families the first run blocked.
JOB_HOW = ("task", "rounds", "passes", "max_passes", "repeats")


def _how(jobs: list[dict]) -> list[dict]:
    return [{k: job.get(k) for k in JOB_HOW} for job in jobs]


def _jobs_difference(then: list[dict], now: list[dict]) -> str:
    if len(then) != len(now):
        return f"{len(then)} jobs then, {len(now)} now"
    for a, b in zip(then, now):
        changed = [f"{k} {a[k]!r} then, {b.get(k)!r} now" for k in a if a[k] != b.get(k)]
        if changed:
            return f"job {a.get('task')} {', '.join(changed)}"
    return "they differ"


def _short(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {v}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def validate_check(problems, *, n, seeds, backends) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...],
                                                              tuple[str, ...] | None]:
    """bench.api.check's options: (problem names, sizes, seeds, backends or None for every installed one)."""
    names = problem_names(problems)
    sizes = _sizes(n)
    try:
        seed_values = tuple(int(s) for s in _items(str(seeds) if isinstance(seeds, int) else seeds))
    except (TypeError, ValueError):
        raise UsageError(f"--seeds: `{seeds}` is not a comma-separated list of integers.") from None
    if not seed_values or min(seed_values) < 0:
        raise UsageError(f"--seeds: `{seeds}` needs integers >= 0 (numpy's seeds are).")
    chosen = _names(backends, backend_registry.names(), "backends") if backends is not None else None
    _available(chosen or ())
    return names, sizes, seed_values, chosen


GATES = ("auto", "ratios", "absolute", "both", "none")


def validate_compare(base: list[Path], new: list[Path], *, factor: float | None, alpha: float,
                     gate: str) -> tuple[Path, Path, bool, float]:
    """bench.api.compare's options: (base, new, whether both are counted runs, the factor that counts:
    defaults.FACTOR for times, COUNT_FACTOR for instruction counts, unless given)."""
    from bench.analysis.counts import COUNT_FACTOR, counted

    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha must be in (0, 0.5); got {alpha}.")
    if gate not in GATES:
        raise UsageError(f"Unknown gate `{gate}`; expected one of: {', '.join(GATES)}.")
    if len(base) != 1 or len(new) != 1:
        raise UsageError("compare takes one run a side (one results CSV or pytest-benchmark JSON each).")
    kinds = {path: counted(path) for path in (base[0], new[0])}
    if any(kinds.values()) and not all(kinds.values()):
        timed = [path for path, is_counted in kinds.items() if not is_counted]
        raise UsageError(f"{timed[0]} holds times and the other run instruction counts: compare counted runs with "
                         "counted runs (--measure instructions), timed with timed.")
    counts = all(kinds.values())
    factor = (COUNT_FACTOR if counts else defaults.FACTOR) if factor is None else factor  # 0 is refused, not read
    if not factor > 1:
        raise UsageError(f"--factor must be above 1; got {factor}.")
    return base[0], new[0], counts, factor
