"""The report's findings are computed from the data: change the data, and the sentences follow."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bench
from bench.analysis.findings import NEAR, findings, trouble, trust
from bench.analysis.summary import autodiff_ratios, cell_stats, grad_over_f
from bench.render.report import variant_table, within
from bench.sweep.results import COLUMNS

pytestmark = pytest.mark.xdist_group(name=__name__)  # a module fixture (a small real run): one process

SIZES = (10, 100, 1000)
ROUNDS = 8  # 2 rounds in each of 4 passes
MOST_WORDS, ALL_WORDS = 45, 300  # a finding, and all of them: the first screen reads in a minute


def _frame(torch_autodiff_factor: float, pass_noise: float = 0.01) -> pd.DataFrame:
    """A synthetic sweep: one problem, f and grad, numpy/jax/torch, autodiff 1.05x the formula,
    except torch's autodiff which costs `torch_autodiff_factor` times its formula. Each pass moves
    torch's autodiff by a factor exp(+-pass_noise), alternately, so that its estimate stays put and
    its interval over the passes widens with `pass_noise`."""
    rng = np.random.default_rng(0)
    effects = np.tile(pass_noise * np.array([1.0, -1.0, 1.0, -1.0]), (len(SIZES), 1))
    rows = []
    variants = {"numpy": [("analytic", "numpy")],
                "jax": [("analytic", "jit"), ("autodiff", "jit")],
                "torch": [("analytic", "eager"), ("autodiff", "backward"), ("autodiff", "func")]}
    for i, n in enumerate(SIZES):
        for backend, modes in variants.items():
            for derivative in ("f", "grad"):
                for repeat in range(ROUNDS):
                    base = 1e-6 * n * (2.0 if derivative == "grad" else 1.0) * (1 + 0.01 * rng.standard_normal())
                    for mode, variant in modes:
                        if derivative == "f" and mode == "autodiff":
                            continue
                        factor = 1.0 if mode == "analytic" else 1.05
                        if backend == "torch" and mode == "autodiff":
                            factor = torch_autodiff_factor * (1.0 if variant == "backward" else 1.2)
                            factor *= np.exp(effects[i, repeat // 2])
                        rows.append({"run_id": "synthetic", "task": "eval", "problem": "least_squares", "n": n,
                                     "backend": backend, "device": "cpu", "dtype": "float64", "mode": mode,
                                     "derivative": derivative, "variant": variant, "repeat": repeat,
                                     "part": repeat // 2, "time_s": base * factor * (1 + 0.005 * rng.standard_normal()),
                                     "status": "ok", "message": ""})
    df = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in df:
            df[column] = np.nan
    return df[list(COLUMNS)]


def _findings(df: pd.DataFrame) -> list[str]:
    stats = cell_stats(df)
    return [s.text for s in findings(df, stats, autodiff_ratios(df), grad_over_f(stats))]


def _gradient(texts: list[str], backend: str, n: int) -> str:
    return next(t for t in texts if t.startswith(f"At n = {n}, {backend}'s autodiff gradient took "))


def _within(df: pd.DataFrame, backend: str) -> str:
    """The ratio table's verdict over every n for the backend's gradient (its first autodiff variant)."""
    ratios = autodiff_ratios(df)
    line = ratios[(ratios["backend"] == backend) & (ratios["derivative"] == "grad")]
    return within(line[line["variant"] == line["variant"].iloc[0]])


def test_findings_say_when_torch_autodiff_is_three_times_slower():
    fair, slow = _findings(_frame(1.05)), _findings(_frame(3.0))
    for n in (SIZES[0], SIZES[-1]):
        assert _gradient(fair, "torch", n).endswith(f"within {NEAR}×.")
        torch = _gradient(slow, "torch", n)
        assert torch.endswith(f"beyond {NEAR}×."), torch
        assert float(re.search(r"took (\d+\.\d+)× \[", torch).group(1)) == pytest.approx(3.0, abs=0.05), torch
        assert _gradient(slow, "jax", n).endswith(f"within {NEAR}×.")  # only torch moved
    # at every n, in the table under the findings
    assert _within(_frame(1.05), "torch") == "every n" and _within(_frame(3.0), "torch") == "beyond at every n"
    assert _within(_frame(3.0), "jax") == "every n"
    # the variant table follows the data too: backward ahead of torch.func by 1.2x
    table = variant_table(cell_stats(_frame(3.0)))
    (torch,) = table[(table["backend"] == "torch") & (table["derivative"] == "grad")].to_dict("records")
    assert torch["fastest variant"] == "backward" and torch["fastest in"] == "3 of 3 cells"
    assert torch["its interval clear below the next one's"] == 3 and torch["ahead of the next (median)"] == "1.20×"


def test_within_is_claimed_only_where_the_interval_supports_it():
    # torch's autodiff at 1.05x, but passes that move it by 20%: its intervals reach past 1.1x, so
    # the report does not say "within", though the estimate is
    noisy = _frame(1.05, pass_noise=0.2)
    for n in (SIZES[0], SIZES[-1]):
        said = _gradient(_findings(noisy), "torch", n)
        assert said.endswith(f"not shown to be within {NEAR}×."), said
    assert _within(noisy, "torch") == "not shown"


def test_a_busy_machine_is_named_in_the_warning_and_a_quiet_one_opens_on_findings():
    df = _frame(1.05)
    stats, ratios = cell_stats(df), autodiff_ratios(df)
    assert trust(df, stats, ratios) is None  # tight intervals, no load: no warning
    df["load_other_cpus"] = 0.9
    df["load_steal_cpus"] = 0.0
    warning = trust(df, stats, ratios)
    assert "other processes used 0.90 CPUs" in warning and "e.g. eval least_squares n=10 " in warning


def test_variants_without_an_interval_are_a_warning_and_wide_ones_a_note_on_the_flagged_cells():
    wide = _frame(1.05, pass_noise=0.5)
    stats, ratios = cell_stats(wide), autodiff_ratios(wide)
    # every number carries its interval: wide ones in a quiet run are said above the flagged cells, no warning
    assert trust(wide, stats, ratios) is None
    said = trouble(wide, stats, ratios)
    assert "median half-width" in said
    assert "timed variants read by a number of their own had one wider than ±10%" in said
    assert "read by their absolute time" in said
    wide.loc[wide["backend"] != "torch", "part"] = 0  # every other variant timed in one pass: no interval
    stats, ratios = cell_stats(wide), autodiff_ratios(wide)
    warning = trust(wide, stats, ratios)
    assert "read by a number of their own were timed in one pass" in warning and "e.g. eval least_squares" in warning
    # and a finding quoting such a number says why it has no interval
    assert any(t.startswith("At n = 10, jax's") and "(one pass)" in t for t in _findings(wide))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A small real run: two problems, the gradient, HVP and dense Hessian and gradient descent, two sizes."""
    out = tmp_path_factory.mktemp("findings") / "small.csv"
    return bench.run(problems=["least_squares", "logistic"], backends=["numpy", "autograd"], tasks=["eval", "solve"],
                     n=[8, 32], derivatives=["grad", "hvp", "hess"], rounds=1, max_rounds=1, passes=2, max_passes=2,
                     repeats=1, sample_time=0.001, threads=1, progress=False, out=out)


def test_the_findings_read_in_a_minute(small_run):
    """Each finding is one sentence of at most MOST_WORDS words with one number and its 95% interval
    (or why it has none), and all of them together at most ALL_WORDS: the qualifications are in the tables."""
    said = small_run.findings
    missing = [what for what in ("autodiff gradient", "Gradient descent", "HVP", "dense Hessian", "floor")
               if not any(what in text for text in said)]
    assert not missing, said
    for text in said:
        assert len(text.split()) <= MOST_WORDS, text
        assert text.endswith(".") and len(re.split(r"(?<=[.;:!?])\s+(?=[A-Z])", text)) == 1, text
        assert len(re.findall(r"\[\d+\.?\d*, \d+\.?\d*\]", text)) == 1 or "(one pass)" in text, text
        without_threshold = re.sub(rf"(?<![\d.]){re.escape(str(NEAR))}×", "", text)  # "within 1.1×", not "11.1×"
        assert len(re.findall(r"\d(?:×| s\b| ms\b| µs\b| ns\b)", without_threshold)) == 1, text  # one number
    assert sum(len(text.split()) for text in said) <= ALL_WORDS, said
