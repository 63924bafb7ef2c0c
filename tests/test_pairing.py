"""The autodiff / analytic ratio divides like by like: each autodiff variant by the analytic variant its
backend declares (backends.Backend.pairs), of the same execution regime, never the fastest one; and
runs read together keep their passes apart."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import backends
import problems

from bench.analysis.summary import autodiff_ratios, cell_stats
from bench.core.cell import Cell
from bench.core.pairing import twin
from bench.measure.checks import declared


def _regime(fn) -> str:
    """compiled (a JAX jit, TensorFlow's XLA, torch.compile's wrapper) or eager, read off the callable."""
    compiled = hasattr(fn, "lower") or getattr(fn, "xla", False) or type(fn).__name__ == "_Compiled"
    return "compiled" if compiled else "eager"


@pytest.mark.parametrize("name", backends.names())
def test_every_autodiff_variant_is_paired_with_an_analytic_variant_of_its_regime(name):
    b = backends.get(name)
    if "autodiff" not in b.modes:
        assert not b.pairs
        return
    ok, why = b.available()
    if not ok:
        pytest.skip(why)
    seen = {}
    for problem in map(problems.get, problems.names()):
        analytic, autodiff = b.functions(problem, "analytic"), b.functions(problem, "autodiff")
        for kind, variants in autodiff.items():
            for variant, fn in variants.items():
                assert b.pairs.get(variant) in analytic[kind], (problem.name, kind, variant)
                assert _regime(fn) == _regime(analytic[kind][b.pairs[variant]]), (problem.name, kind, variant)
                seen[variant] = b.pairs[variant]
        # a descent step: the step the backend builds around each value_and_grad is what is timed
        steps = {mode: {v: b.step(vg) for v, vg in b.value_and_grad(problem, mode).items()}
                 for mode in ("analytic", "autodiff")}
        for variant, step in steps["autodiff"].items():
            assert _regime(step) == _regime(steps["analytic"][b.pairs[variant]]), (problem.name, variant)
            seen[variant] = b.pairs[variant]
        solvers = {mode: b.solvers(problem, mode) for mode in ("analytic", "autodiff")}
        for variant in solvers["autodiff"]:  # a whole-loop solve with a whole-loop solve
            assert b.pairs[variant] in solvers["analytic"], (problem.name, variant)
            seen[variant] = b.pairs[variant]
    assert seen == b.pairs  # nothing declared that no problem makes


def test_tensorflow_tape_is_divided_by_its_eager_formula_and_tape_xla_by_xla():
    """The case that was wrong: XLA's analytic formula ten times faster than eager's, and eager `tape`
    divided by it. Now each autodiff variant is divided by its own regime's formula."""
    times = {("analytic", "eager"): 4.2e-3, ("analytic", "xla"): 4e-4, ("autodiff", "tape"): 5e-3,
             ("autodiff", "tape-xla"): 6e-4}
    rows = [dict(task="eval", problem="logistic", n=10, backend="tensorflow", device="cpu", dtype="float64",
                 derivative="grad", mode=mode, variant=variant, run_id="r", part=p, repeat=r, status="ok",
                 time_s=t * (1 + 0.01 * p)) for (mode, variant), t in times.items() for p in range(3) for r in range(3)]
    ratios = autodiff_ratios(pd.DataFrame(rows)).set_index("variant")
    assert ratios.loc["tape", "variant_analytic"] == "eager" and ratios.loc["tape-xla", "variant_analytic"] == "xla"
    assert ratios.loc["tape", "ratio"] == pytest.approx(5e-3 / 4.2e-3, rel=1e-3)
    assert ratios.loc["tape-xla", "ratio"] == pytest.approx(6e-4 / 4e-4, rel=1e-3)


def test_an_undeclared_autodiff_variant_gets_no_ratio_and_is_refused_before_any_work():
    autograd = backends.get("autograd")
    assert twin("autograd", "no-such-variant") is None and twin("no-such-backend", "grad") is None
    assert twin("autograd@base", "grad") == "eager"  # an A/B run's side
    cell = Cell(task="eval", problem="logistic", n=10, backend="autograd", device="cpu",
                derivative="grad", modes=("analytic", "autodiff"), seed=0)
    entries = [("analytic", "eager", None), ("autodiff", "grad", None), ("autodiff", "home-made", None)]
    runnable, refused = declared(cell, autograd, entries)
    assert runnable == entries[:2]
    assert [(r["variant"], r["status"]) for r in refused] == [("home-made", "error")]
    assert "declares no analytic twin" in refused[0]["message"]
    assert declared(dataclasses.replace(cell, part=1), autograd, entries)[1] == []  # said once, in the first part


def test_a_backend_with_autodiff_and_no_pairs_is_refused_at_registration():
    unpaired = dataclasses.replace(backends.get("autograd"), name="autograd-unpaired", pairs={})
    with pytest.raises(ValueError, match="declares no pairs"):
        backends.register(unpaired)
    assert "autograd-unpaired" not in backends.names()


def test_runs_read_together_keep_their_passes_apart():
    """Two runs of three passes each are six passes, not three passes of pooled samples."""
    rng = np.random.default_rng(0)
    rows = [dict(task="eval", problem="logistic", n=10, backend="numpy", device="cpu", dtype="float64",
                 derivative="grad", mode="analytic", variant="eager", run_id=run, part=p, repeat=r, status="ok",
                 time_s=1e-4 * np.exp(rng.normal(0, 0.05))) for run in ("a", "b") for p in range(3) for r in range(3)]
    unmeasured = ["compile_s", "iterations", "grad_calls", "hvp_calls", "hess_calls", "rel_err", "throughput_s",
                  "peak_mem_bytes"]
    stats = cell_stats(pd.DataFrame(rows).assign(**dict.fromkeys(unmeasured, np.nan)))
    assert stats["passes"].tolist() == [6] and stats["samples"].tolist() == [18]
