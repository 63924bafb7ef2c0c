"""One cell in this process, with real problems and backends (or a backend record changed in one
field): interleaved rounds, what peak memory counts, and what a failing variant leaves behind."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from helpers import ready

import backends
import problems

from bench.core.cell import Cell
from bench.measure.cells import run_cell
from bench.measure.context import Context

GRAD = Cell(task="eval", problem="least_squares", n=64, backend="numpy", device="cpu", derivative="grad",
            modes=("analytic", "autodiff"), rounds=6, max_rounds=6, min_sample_s=0.002)


def rows_of(cell, backend, ctx=None):
    return [row for kind, batch in run_cell(cell, ctx or Context(backend)) if kind == "rows" for row in batch]


def test_rounds_interleave_every_variant_in_a_seeded_order():
    torch = ready("torch")
    cell = dataclasses.replace(GRAD, backend="torch")
    rows = rows_of(cell, torch)
    assert {r["status"] for r in rows} == {"ok"}
    variants = {(r["mode"], r["variant"]) for r in rows}
    assert variants == {("analytic", "eager"), ("analytic", "fused"), ("autodiff", "backward"), ("autodiff", "func")}
    by_round = {}
    for r in rows:
        by_round.setdefault(r["repeat"], []).append(r["position"])
    assert sorted(by_round) == list(range(6))
    assert all(sorted(p) == list(range(len(variants))) for p in by_round.values())  # each variant once a round
    first = {r["repeat"]: (r["mode"], r["variant"]) for r in rows if r["position"] == 0}
    assert len(set(first.values())) > 1  # the order changes from round to round
    again = rows_of(cell, torch)
    assert [(r["repeat"], r["position"], r["variant"]) for r in again] == \
        [(r["repeat"], r["position"], r["variant"]) for r in rows]  # seeded by the cell


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="this kernel does not let a process reset its memory high-water mark")
def test_the_reference_is_not_counted_in_a_variants_peak_memory():
    # The analytic variant is checked against autodiff's first variant; here that reference costs
    # 400 MB. It is computed before the variant's memory baseline, so the variant does not pay it.
    problem = problems.get("least_squares")

    def costly_autodiff_grad(x, data):
        scratch = np.ones(50_000_000)  # 400 MB
        return problem.grad(x, data) + 0.0 * scratch[0]

    numpy = backends.get("numpy")
    backend = dataclasses.replace(
        numpy, modes=("analytic", "autodiff"), pairs={"costly": "eager"},
        functions=lambda p, mode: {"grad": {"costly": costly_autodiff_grad}} if mode == "autodiff"
        else numpy.functions(p, mode))
    rows = rows_of(dataclasses.replace(GRAD, rounds=3, max_rounds=3), backend)
    peaks = {r["variant"]: r["peak_mem_bytes"] for r in rows}
    assert {r["status"] for r in rows} == {"ok"}
    assert peaks["costly"] > 300e6  # the autodiff variant's own cost is counted
    assert peaks["eager"] < 50e6


def test_a_solve_variant_that_raises_keeps_the_other_variants_rows():
    torch = ready("torch")
    problem = problems.get("least_squares")
    real = torch.value_and_grad(problem, "autodiff")
    calls = {"n": 0}

    def breaks_on_its_third_descent(x, data):
        if x.abs().sum() == 0:  # every descent starts at x0 = 0
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("planted failure in the second repeat")
        return real["backward"](x, data)

    backend = dataclasses.replace(
        torch, value_and_grad=lambda p, mode: {"backward": breaks_on_its_third_descent, "func": real["func"]}
        if mode == "autodiff" else torch.value_and_grad(p, mode))
    cell = Cell(task="solve", problem="least_squares", n=32, backend="torch", device="cpu", derivative="gd",
                modes=("analytic", "autodiff"), rounds=3, max_rounds=3)
    rows = rows_of(cell, backend)
    by_variant = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r["status"])
    assert by_variant["eager"] == ["ok"] * 3 and by_variant["func"] == ["ok"] * 3
    assert by_variant["backward"].count("error") == 1 and by_variant["backward"].count("ok") >= 1
    assert any("planted failure" in r["message"] for r in rows)


def test_solve_is_not_run_unchecked(monkeypatch):
    # The gradient to check against fails: the solve is `skipped` ("unchecked"), as eval cells are.
    def broken(p, mode):
        return {"grad": {"broken": lambda x, data: 1 / 0}}

    monkeypatch.setitem(backends._REGISTRY, "autograd", dataclasses.replace(backends.get("autograd"), functions=broken))
    cell = Cell(task="solve", problem="least_squares", n=16, backend="numpy", device="cpu", derivative="gd",
                modes=("analytic",), rounds=3)
    rows = rows_of(cell, backends.get("numpy"))
    assert [r["status"] for r in rows] == ["skipped"]
    assert "unchecked" in rows[0]["message"] and "ZeroDivisionError" in rows[0]["message"]
