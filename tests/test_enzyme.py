"""The enzyme backend (Enzyme-JAX): every problem of the library through it, what it cannot do pinned."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import call, converted, ready

import backends
import problems
from backends.enzyme_backend import RIVAL, VARIANTS

from bench.measure.check import sizes_for

pytest.importorskip("enzyme_ad", reason="the enzyme extra is not installed (pip install -e '.[enzyme]')")

# What Enzyme-JAX 0.0.16 refuses (a `skipped` row quoting it in the sweep): every derivative of the problems
# whose f calls LAPACK through a solve, a determinant or eigh, for which it has no adjoint; every other
# variant of every problem matches numpy's analytic result. Pinned, so that a fix upstream shows. At n = 16
# (4 x 4 matrices): at n <= 5 (2 x 2) it differentiated det, logdet and sx_logdet.
LAPACK = {"det", "det_shift", "eig_prod", "eig_sum", "logdet", "sx_logdet", "tr_AX2BXinvT", "tr_inv"}


def refused_everything(problem_name: str) -> set[tuple[str, str]]:
    functions = backends.get("enzyme").functions(problems.get(problem_name), "autodiff")
    return {(kind, v) for kind, variants in functions.items() for v in variants if v in VARIANTS}


def _check(problem_name: str, n: int = 16, seed: int = 2, *, everything: bool = False) -> set[tuple[str, str]]:
    """Every Enzyme variant against numpy's formulas (`everything`: JAX's beside them, and the jitted
    formulas too, which tests/test_backends.py checks in the jax backend); the (kind, variant) pairs
    Enzyme refused."""
    backend, problem = ready("enzyme"), problems.get(problem_name)
    (n,) = sizes_for(problem, (n,))
    inst = problem.instance(n, seed=seed)
    x_np, v_np = problem.evaluation_point(n, seed=seed)
    data, x, v = converted(backend, inst, x_np, v_np)
    refused = set()
    for mode in backend.modes if everything else ("autodiff",):
        for derivative, variants in backend.functions(problem, mode).items():
            expected = call(derivative, getattr(problem, derivative), x_np, v_np, inst.data)
            for variant, fn in variants.items():
                if variant.startswith(RIVAL) and not everything:
                    continue
                try:
                    out = backend.to_numpy(call(derivative, fn, x, v, data))
                except backends.Infeasible as exc:
                    assert "Enzyme-JAX" in str(exc) and not variant.startswith("jax-"), (variant, exc)
                    assert problem_name not in LAPACK or "could not compute the adjoint of lapack_" in str(exc), exc
                    refused.add((derivative, variant))
                    continue
                assert out.dtype == np.float64
                np.testing.assert_allclose(out.reshape(np.shape(expected)), expected, rtol=1e-10, atol=1e-12,
                                           err_msg=f"enzyme {mode} {derivative} {variant}")
    return refused


@pytest.mark.parametrize("problem_name", ["least_squares"])
def test_enzyme_matches_the_formulas_on_least_squares(problem_name):
    assert _check(problem_name, everything=True) == set()


@pytest.mark.slow
@pytest.mark.parametrize("problem_name", [p for p in problems.names() if p != "least_squares"])
def test_every_problem_through_enzyme(problem_name):
    expected = refused_everything(problem_name) if problem_name in LAPACK else set()
    assert _check(problem_name) == expected


def test_enzyme_pairs_every_variant_with_jit_and_with_jax_own():
    b = backends.get("enzyme")
    functions = b.functions(problems.get("logistic"), "autodiff")
    variants = {v for kind in functions.values() for v in kind}
    assert all(b.pairs[v] == "jit" for v in variants)
    assert {b.versus[v] for v in variants if v in b.versus} == {v for v in variants if v.startswith("jax-")}
    assert b.presets == ("enzyme",) and "enzyme" not in backends.get("jax").pairs


def test_a_refusal_inside_enzyme_is_infeasible_and_another_failure_is_not():
    import jax

    b = ready("enzyme")
    hess = b.functions(problems.get("logistic"), "autodiff")["hess"]
    # jax.hessian vmaps the HVPs: Enzyme-JAX has no batching rule, refused in its own words
    from backends.enzyme_backend import _f, _Refusing

    p = problems.get("logistic")
    inst = p.instance(4)
    data, x, _ = converted(b, inst, *p.evaluation_point(4))
    vmapped = _Refusing(jax.jit(jax.hessian(_f(p))))
    with pytest.raises(backends.Infeasible, match="Enzyme-JAX .* Batching rule for 'enzyme_primal'"):
        b.compile(vmapped, (x, data))
    with pytest.raises(ZeroDivisionError):
        _Refusing(lambda: 1 / 0)()
    assert set(hess) == {"fwd-rev-map", "jax-fwd-rev-map"}


@pytest.mark.slow
def test_a_sweep_pairs_enzyme_with_jax_own_per_round(tmp_path):
    from bench import api
    from bench.analysis.summary import versus_ratios
    from bench.sweep.results import read_results

    out = tmp_path / "enzyme.csv"
    api.run(backends=["enzyme"], problems=["logistic"], derivatives=["grad", "hvp"], n=[10], passes=2, max_passes=2,
            out=out, progress=False)
    df = read_results([out])
    assert set(df["status"]) == {"ok"}
    found = versus_ratios(df).set_index(["derivative", "variant"])
    assert set(found.index) == {("grad", "rev"), ("hvp", "fwd-rev"), ("hvp", "rev-rev")}
    assert (found["variant_versus"] == "jax-" + found.index.get_level_values("variant")).all()
    assert ((found["versus_lo"] <= found["versus"]) & (found["versus"] <= found["versus_hi"])).all()
    assert (found["passes"] == 2).all() and found["versus"].between(0.2, 5).all()
    from bench.analysis.findings import versus

    sentences = {s.text.split(", same rounds")[0]: s.text for s in versus(df)}
    assert set(sentences) == {"enzyme's gradient against jax-rev", "enzyme's HVP against jax-fwd-rev, jax-rev-rev"}
    grad = found.loc[("grad", "rev")]
    faster, slower = int(grad["versus_hi"] < 1), int(grad["versus_lo"] > 1)
    assert f"faster in {faster} of 1 cells" in sentences["enzyme's gradient against jax-rev"]
    assert f"slower in {slower}" in sentences["enzyme's gradient against jax-rev"]
