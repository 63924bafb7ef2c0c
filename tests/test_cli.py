"""Bad input: a clear message naming the valid choices, exit 2, before any work."""
from __future__ import annotations

import subprocess
import sys

import pytest

import problems

from bench.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["run", "--problems", "least_square"], "expected one of: " + ", ".join(problems.names())),
    (["run", "--problems", "no_such_file.py"], "Problem file `no_such_file.py` does not exist"),
    (["run", "--passes", "0"], "--passes must be >= 1"),
    (["run", "--sample-time", "0"], "--sample-time must be a positive number"),
    (["run", "--backends", "jaxx"], "expected one of: autograd, enzyme, jax, numpy, tensorflow, torch, torch-compile"),
    (["run", "--devices", "gpu"], "expected one of: cpu, cuda"),
    (["run", "--modes", "manual"], "expected one of: analytic, autodiff"),
    (["run", "--tasks", "train"], "expected one of: eval, solve"),
    (["run", "--derivatives", "jacobian"], "expected one of: " + ", ".join(problems.DERIVATIVE_KINDS)),
    (["run", "--problems", "least_squares", "--derivatives", "jac"], "least_squares: f, grad, hvp, hess"),
    (["run", "--n", "0"], "integer >= 1"),
    (["run", "--n", "10,1.5"], "integer >= 1"),
    (["run", "--n", "ten"], "not a number"),
    (["run", "--n-logspace", "1,4"], "START,STOP,NUM"),
    (["run", "--eps", "0"], "--eps must be a positive number"),
    (["run", "--eps=-1e-9"], "--eps must be a positive number"),
    (["run", "--repeats", "0"], "--repeats must be >= 1"),
    (["run", "--rounds", "0"], "--rounds must be >= 1"),
    (["run", "--passes", "3", "--max-passes", "2"], "--max-passes (2) must be at least --passes (3)"),
    (["run", "--target", "0"], "--target must be a positive number"),
    (["run", "--threads", "0"], "--threads must be between 1 and"),
    (["run", "--out", "results/x.txt"], "must name a .csv file"),
    (["run", "--out", "/proc/nablabench/x.csv"], "Cannot write"),
])
def test_bad_run_input_exits_2_with_the_valid_choices(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_argparse_choices_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["run", "--preset", "huge"])
    assert info.value.code == 2


def test_cuda_without_a_gpu_exits_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert main(["run", "--devices", "cuda", "--backends", "numpy,torch", "--out", "/tmp/x.csv"]) == 2
    assert "no selected backend sees a CUDA GPU" in capsys.readouterr().err


def test_existing_output_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("x\n")
    assert main(["run", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_report_refuses_a_csv_that_is_not_ours(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main(["report", str(other), "--out", str(tmp_path / "rep")]) == 2
    assert "not a nablabench results CSV" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.csv")]) == 2
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("command", [[], ["list"], ["run"], ["report"]])
def test_help_everywhere(command):
    done = subprocess.run([sys.executable, "-m", "bench", *command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: nablabench" in done.stdout


def test_list_problems_shows_seed_references(capsys):
    assert main(["list", "problems"]) == 0
    out = capsys.readouterr().out
    assert "least_squares" in out and "Automatic differentiation" in out
    assert main(["list", "backends"]) == 0
    assert "numpy" in capsys.readouterr().out


def test_a_renamed_option_still_works_and_says_what_replaced_it(tmp_path, capsys):
    """`run --samples` became `--rounds`: the old name is read as the new one, with a note."""
    from bench.cli import build_parser

    args = build_parser().parse_args(["run", "--samples", "3"])
    assert args.rounds == 3
    assert "--samples is now --rounds" in capsys.readouterr().err
    assert main(["run", "--samples", "0"]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err


def test_run_writes_a_new_file_each_time_without_out(tmp_path, monkeypatch, capsys):
    """One --out default, from Python and the command line alike: a new results/run-<time>.csv."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--backends", "numpy", "--problems", "least_squares", "--tasks", "eval", "--derivatives", "grad",
            "--n", "8", "--rounds", "1", "--max-passes", "1", "--sample-time", "0.001", "--no-progress"]
    assert main(argv) == 0 and main(argv) == 0
    written = sorted(p.name for p in (tmp_path / "results").glob("run-*.csv") if ".summary" not in p.name)
    assert len(written) == 2 and written[0] != written[1]
