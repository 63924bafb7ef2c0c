"""The report's findings are computed from the data: change the data, and the sentences follow."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bench.findings import NEAR, findings, trust
from bench.results import COLUMNS
from bench.summary import autodiff_ratios, cell_stats, grad_over_f

SIZES = (10, 100, 1000)
ROUNDS = 7


def _frame(torch_autodiff_factor: float) -> pd.DataFrame:
    """A synthetic sweep: one problem, f and grad, numpy/jax/torch, autodiff 1.05x the formula,
    except torch's autodiff which costs `torch_autodiff_factor` times its formula."""
    rng = np.random.default_rng(0)
    rows = []
    variants = {"numpy": [("analytic", "numpy")],
                "jax": [("analytic", "jit"), ("autodiff", "jit")],
                "torch": [("analytic", "eager"), ("autodiff", "backward"), ("autodiff", "func")]}
    for n in SIZES:
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
                        rows.append({"run_id": "synthetic", "task": "eval", "problem": "least_squares", "n": n,
                                     "backend": backend, "device": "cpu", "dtype": "float64", "mode": mode,
                                     "derivative": derivative, "variant": variant, "repeat": repeat,
                                     "time_s": base * factor, "status": "ok", "message": ""})
    df = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in df:
            df[column] = np.nan
    return df[list(COLUMNS)]


def _findings(df: pd.DataFrame) -> list[str]:
    stats = cell_stats(df)
    return [s.text for s in findings(df, stats, autodiff_ratios(df), grad_over_f(stats))]


def _clause(texts: list[str], backend: str) -> str:
    overhead = next(t for t in texts if t.startswith("Autodiff against the hand-written formula for the gradient"))
    return next(c for c in re.split(r"[:;] ", overhead) if c.startswith(backend + " "))


def test_findings_say_when_torch_autodiff_is_three_times_slower():
    fair, slow = _findings(_frame(1.05)), _findings(_frame(3.0))
    assert f"within {NEAR}× at every n" in _clause(fair, "torch")
    torch = _clause(slow, "torch")
    assert torch.startswith("torch (backward) 3.0×") and f"never within {NEAR}×" in torch, torch
    assert f"within {NEAR}× at every n" in _clause(slow, "jax")  # only torch moved
    # the variant sentence follows the data too: backward ahead of torch.func by 1.2x
    winners = next(t for t in slow if t.startswith("Fastest variant"))
    assert "torch the gradient (cpu): backward fastest in 3 of 3 cells, 1.20× ahead" in winners


def test_a_busy_machine_is_named_in_the_warning():
    df = _frame(1.05)
    stats = cell_stats(df)
    assert trust(df, stats, None) is None
    df["load_other_cpus"] = 0.9
    df["load_steal_cpus"] = 0.0
    assert "other processes used 0.90 CPUs" in trust(df, stats, None)
    assert "varied by 40%" in trust(df, stats, {"numpy": 0.4, "python": 0.1})
