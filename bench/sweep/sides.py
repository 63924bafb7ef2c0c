"""The sides of an A/B run (bench.api.ab): which code and which interpreter each side's workers run.

A side is a git ref of this project (its problems/, backends/ and bench/ exported into a folder of
its own), `.` (this working tree, uncommitted changes included), a folder holding such a tree (a
copy with a change planted in it), or `python:PATH` (this working tree under another interpreter:
another environment's framework versions). What is under test is what a
worker runs: the problems' formulas, the backend adapters and the measuring code around the timed
call (bench.core, bench.measure). The parent, which plans, schedules, writes and judges, is this one.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ("problems", "backends", "bench")  # what a worker imports of a side's tree
# a side's interpreter must bring what a worker imports besides the frameworks
WORKER_NEEDS = ("numpy", "scipy", "array_api_compat", "threadpoolctl", "psutil", "cloudpickle")


class SideError(ValueError):
    """A side that cannot run: the message names it and why."""


@dataclass(frozen=True)
class Side:
    name: str  # base or new
    spec: str  # as given
    python: str  # the interpreter its workers run
    tree: str  # the source tree its workers import
    commit: str | None  # a git ref's commit

    def setting(self) -> tuple[str, str, str]:
        """What bench.sweep.executors.Settings.sides holds of it."""
        return self.name, self.python, self.tree

    def describe(self) -> str:
        where = f"commit {self.commit[:12]}" if self.commit else f"the working tree {self.tree}"
        return f"{self.name}: {self.spec} ({where}, {self.python})"


def resolve(spec: str, name: str, *, root: Path = ROOT, cache: Path | None = None) -> Side:
    """A side from how it was given: a git ref, `.`, or python:PATH; SideError naming what is wrong."""
    if spec.startswith("python:"):
        python = shutil.which(spec.split(":", 1)[1]) or spec.split(":", 1)[1]
        _check_interpreter(python, spec)
        return Side(name, spec, python, str(root), None)
    if spec == ".":
        return Side(name, spec, sys.executable, str(root), None)
    if Path(spec).is_dir():
        if not (Path(spec) / "bench" / "sweep" / "workers.py").exists():
            raise SideError(f"`{spec}` is a folder without this project's tree (bench/sweep/workers.py).")
        return Side(name, spec, sys.executable, str(Path(spec).resolve()), None)
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SideError(f"`{spec}` is neither a git ref of {root}, nor `.`, a folder of this project's tree or "
                        "python:PATH.")
    commit = done.stdout.strip()
    return Side(name, spec, sys.executable, str(_exported(commit, root, cache)), commit)


def _exported(commit: str, root: Path, cache: Path | None) -> Path:
    """The commit's problems/, backends/ and bench/ in a folder of their own (kept: a commit's code
    does not change)."""
    cache = cache or Path(tempfile.gettempdir()) / "nablabench-ab"
    folder = cache / commit
    if (folder / "bench" / "sweep" / "workers.py").exists():
        return folder
    listed = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", commit, "bench/sweep/workers.py"],
                            capture_output=True, text=True)
    if not listed.stdout.strip():
        raise SideError(f"commit {commit[:12]} predates the worker layout an A/B run drives "
                        "(bench/sweep/workers.py): compare with a later commit.")
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{commit[:12]}-", dir=cache))
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", commit, *EXPORTED],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(staging)], input=archive, check=True)
    try:
        staging.rename(folder)
    except OSError:  # another run exported it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _check_interpreter(python: str, spec: str) -> None:
    code = ("import importlib.util, sys; missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]; "
            "print(','.join(missing)); print('%d.%d' % sys.version_info[:2])")
    try:
        done = subprocess.run([python, "-c", code, *WORKER_NEEDS], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise SideError(f"{spec}: cannot run `{python}`: {exc.strerror or exc}.") from None
    if done.returncode != 0:
        raise SideError(f"{spec}: `{python}` failed: {done.stderr.strip()[-300:]}")
    missing, version = (done.stdout.split("\n") + ["", ""])[:2]  # the first line is empty where nothing lacks
    if missing:
        raise SideError(f"{spec}: `{python}` lacks {missing.replace(',', ', ')}, which a worker imports; install "
                        "them there (pip install numpy scipy array-api-compat threadpoolctl psutil cloudpickle).")
    here = "%d.%d" % sys.version_info[:2]
    if version != here:
        raise SideError(f"{spec}: `{python}` is Python {version}; its workers are spawned from this Python {here}, "
                        "so the two must be the same version.")
