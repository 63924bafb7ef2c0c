"""Benchmark your own function: a problem and a backend defined outside the package, with no edit
inside it; `nablabench check` on a right and on a wrong derivation; the README's example as written."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import backends
import problems

from bench.cli import main
from bench.sweep.results import read_results

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_example() -> str:
    """The user's problem file exactly as the README shows it (the block after `my_network.py`)."""
    text = README.read_text()
    match = re.search(r"<!-- example: my_network.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its worked example"
    return match.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user")
    path = folder / "my_network.py"
    path.write_text(readme_example())
    return path


@pytest.mark.slow  # the slow tier (make test-slow)
def test_check_passes_on_the_readme_example(example, capsys):
    assert main(["check", str(example), "--n", "4,12"]) == 0
    out = capsys.readouterr().out
    assert "two_layer" in out and "every derivative of two_layer agrees" in out
    for column in ("finite differences", "consistency", "jax", "torch", "autograd"):
        assert column in out
    assert "two_layer" not in problems.built_in()


def test_check_names_a_gradient_wrong_in_one_entry(example, tmp_path, capsys):
    wrong = tmp_path / "wrong_network.py"
    source = example.read_text().replace('name="two_layer"', 'name="two_layer_wrong"')
    # one entry of the gradient 1% off
    source = source.replace('    return xp.reshape(G.T @ data["A"], (-1,)) + data["lam"] * x\n',
                            '    g = xp.reshape(G.T @ data["A"], (-1,)) + data["lam"] * x\n'
                            '    return xp.concat([g[:1] * 1.01, g[1:]])\n')
    assert "1.01" in source
    wrong.write_text(source)
    assert main(["check", f"{wrong}:two_layer", "--n", "4", "--seeds", "0", "--backends", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: two_layer_wrong grad" in out
    assert main(["check", f"{wrong}:nothing_here"]) == 2
    assert "no Problem record called `nothing_here`" in capsys.readouterr().err


def test_run_and_report_a_problem_from_a_file(example, tmp_path):
    out = tmp_path / "mine.csv"
    assert main(["run", "--problems", f"{example}:two_layer", "--backends", "numpy,torch", "--tasks", "eval",
                 "--derivatives", "grad,hvp", "--n", "4,16", "--rounds", "1",
                 "--max-passes", "2", "--sample-time", "0.001", "--no-progress",
                 "--out", str(out)]) == 0
    df = read_results([out])
    assert set(df["problem"]) == {"two_layer"} and (df["status"] == "ok").all()
    assert {"numpy", "torch"} == set(df["backend"]) and {"analytic", "autodiff"} == set(df["mode"])
    report = tmp_path / "report"
    assert main(["report", str(out), "--problems", str(example), "--out", str(report)]) == 0
    html = (report / "index.html").read_text()
    assert "per_call_two_layer_cpu.png" in html and "<code>two_layer</code>" in html


def test_list_says_where_each_problem_comes_from(example, capsys):
    assert main(["list", "problems", "--problems", str(example)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert str(example) in lines["two_layer"] and "built-in" in lines["least_squares"]


def test_a_problem_name_that_is_taken_is_refused(tmp_path, capsys):
    clash = tmp_path / "clash.py"
    clash.write_text(readme_example().replace('name="two_layer"', 'name="least_squares"'))
    assert main(["check", str(clash)]) == 2
    assert "already defined" in capsys.readouterr().err


FIFTH_BACKEND = '''
"""A fifth backend from outside the package: numpy, with central differences as its "autodiff"."""
import numpy as np

from backends import Backend
from backends._protocol import analytic_functions, eager_step, no_compile


def _fd_grad(problem):
    def grad(x, data, h=1e-7):
        e = np.eye(x.size)
        return np.array([(problem.f(x + h * e[i], data) - problem.f(x - h * e[i], data)) / (2 * h)
                         for i in range(x.size)])
    return grad


backend = Backend(
    name="fdnumpy", modes=("analytic", "autodiff"), available=lambda: (True, ""),
    setup=lambda threads, device="cpu": {"fdnumpy": "1.0"}, devices=lambda: ["cpu"],
    asarray=lambda a, device: np.array(a, dtype=np.float64), to_numpy=np.asarray, to_float=float,
    sync=lambda out: None,
    functions=lambda problem, mode: analytic_functions(problem) if mode == "analytic"
    else {"grad": {"central": _fd_grad(problem)}} if problem.grad is not None else {},
    value_and_grad=lambda problem, mode: {"eager": problem.value_and_grad} if mode == "analytic"
    else {"central": lambda x, data: (problem.f(x, data), _fd_grad(problem)(x, data))},
    solvers=lambda problem, mode: {}, compile=no_compile, step=eager_step,
    pairs={"central": "eager"}, kinds=("grad",), colour="tab:cyan", packages=("numpy",),
)
'''


@pytest.fixture(scope="module")
def fifth_backend(tmp_path_factory):
    """An installed distribution that registers a backend by entry point: a module and its
    .dist-info on PYTHONPATH, which importlib.metadata reads as it reads site-packages."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "fdnumpy_backend.py").write_text(FIFTH_BACKEND)
    info = folder / "fdnumpy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fdnumpy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nablabench.backends]\nfdnumpy = fdnumpy_backend:backend\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]))
    return env


def _cli(env, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, **kwargs)


@pytest.mark.slow  # the slow tier (make test-slow)
def test_a_fifth_backend_from_an_entry_point_runs_everywhere(fifth_backend, tmp_path):
    env = fifth_backend
    listed = _cli(env, "list", "backends")
    assert listed.returncode == 0 and "fdnumpy" in listed.stdout and "entry point" in listed.stdout
    runs = []
    for i, extra in enumerate((["--tasks", "eval,solve", "--report", str(tmp_path / "report-0")], ["--tasks", "eval"])):
        out = tmp_path / f"five-{i}.csv"
        done = _cli(env, "run", "--backends", "numpy,fdnumpy", "--problems", "least_squares,logistic",
                    "--derivatives", "f,grad,hess", "--n", "8,24", "--rounds", "2", "--max-rounds", "2",
                    "--max-passes", "2", "--sample-time", "0.001", "--no-progress",
                    "--out", str(out), *extra)
        assert done.returncode == 0, done.stderr
        runs.append(out)
    df = read_results([runs[0]])
    five = df[df["backend"] == "fdnumpy"]
    unchecked = five["derivative"] == "hess"  # its autodiff has no Hessian, nor names a backend that has
    assert (five[~unchecked]["status"] == "ok").all(), five[["variant", "status", "message"]]
    assert (five[unchecked]["status"] == "skipped").all()
    assert five[unchecked]["message"].str.contains("fdnumpy has no autodiff hess").all()
    assert {"central", "eager"} <= set(five["variant"]) and set(five["task"]) == {"eval", "solve"}
    assert "hess" not in set(five[five["mode"] == "autodiff"]["derivative"])  # a kind it does not implement
    html = (tmp_path / "report-0" / "index.html").read_text()
    assert "fdnumpy" in html
    compared = _cli(env, "compare", str(runs[0]), str(runs[1]), "--gate", "none")
    assert compared.returncode == 0 and "within-run ratios" in compared.stdout, compared.stderr
    # every ratio cell compared (the CLI lists only those that moved or are inconclusive, which is noise here)
    script = "import sys, bench; print(*(v.cell for v in bench.compare(*sys.argv[1:], gate='none').ratios), sep='\\n')"
    cells = subprocess.run([sys.executable, "-c", script, str(runs[0]), str(runs[1])], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert "fdnumpy/cpu grad central" in cells.stdout, cells.stderr
    meta = runs[0].with_suffix(".meta.json").read_text()
    assert '"fdnumpy/cpu"' in meta


def test_backends_and_kinds_are_declared_once():
    # each backend's record carries what the sweep and report need; each kind is declared once
    for name in backends.names():
        b = backends.get(name)
        assert set(b.kinds) <= set(problems.KINDS), name
        assert b.colour and b.packages and b.data_copies >= 1, name
    assert tuple(problems.KINDS) == problems.DERIVATIVE_KINDS
    assert problems.KINDS["hvp"].takes_direction and not problems.KINDS["grad"].takes_direction
    from bench.sweep.executors import Settings
    from bench.sweep.presets import Job
    from bench.sweep.runner import plan

    with pytest.raises(ValueError, match="Unknown derivative kind `jacobian`"):
        plan((Job("eval", ("least_squares",), ("jacobian",), (8,)),), Settings(backends=("numpy",)))


def test_problem_needs_only_name_f_instance_and_derivatives():
    import numpy as np

    p = problems.Problem(name="tiny", f=lambda x, data: 0.5 * (x * x).sum(), grad=lambda x, data: x,
                         instance=lambda n, seed=0: problems.Instance("tiny", n, seed, np.zeros(n), {}))
    value, g = p.value_and_grad(np.ones(3), {})
    assert value == 1.5 and list(g) == [1.0, 1.0, 1.0]
    assert p.instance(3).f_star is None  # no step and f*: gradient descent does not run
    assert p.derivatives == ("f", "grad") and p.evaluation_point(5)[0].shape == (5,)
