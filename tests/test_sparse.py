"""Sparse Hessians (issue 36): the problems' nonzeros and patterns, the check that decompresses HVPs, asdex's
sparse autodiff, and Newton with the sparse Hessian."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import converted, ready

import problems

import bench
from bench.measure.solvers import STEPS, newton_type, pieces, sparse_direction
from bench.sweep.results import read_results

SPARSE = ("rosenbrock_chain", "stencil_energy", "logcosh_sep")
EPS = 1e-9


@pytest.mark.parametrize("name", SPARSE)
@pytest.mark.parametrize("n", [2, 3, 7])
def test_the_nonzeros_are_the_dense_hessian_on_its_pattern_in_csr_order(name, n):
    problem = problems.get(name)
    inst = problem.instance(n)
    x, _ = problem.evaluation_point(n)
    dense = problem.hess(x, inst.data)
    pattern = problem.sparsity(n)
    matrix = pattern.matrix(problem.sparse_hess(x, inst.data))
    np.testing.assert_allclose(matrix.toarray(), dense, rtol=0, atol=1e-12)
    assert np.count_nonzero(dense) == pattern.nnz  # the pattern is the structure, no entry more
    keys = pattern.rows * dense.shape[0] + pattern.cols
    assert np.all(np.diff(keys) > 0)  # CSR order, each entry once: asdex's order, scipy's


@pytest.mark.parametrize("name", SPARSE)
def test_one_hvp_a_colour_gives_every_nonzero(name):
    problem = problems.get(name)
    n = 9
    inst = problem.instance(n)
    x, _ = problem.evaluation_point(n)
    pattern = problem.sparsity(n)
    products = np.array([problem.hvp(x, d, inst.data) for d in pattern.directions()])
    np.testing.assert_allclose(pattern.decompress(products), problem.sparse_hess(x, inst.data), rtol=1e-13, atol=1e-13)
    assert len(products) == {"rosenbrock_chain": 3, "stencil_energy": 13, "logcosh_sep": 1}[name]


def test_a_colouring_that_merges_neighbours_gives_wrong_nonzeros():
    # the check is only as good as the colouring: two columns of one colour sharing a row mix their entries
    from dataclasses import replace

    problem = problems.get("rosenbrock_chain")
    inst, (x, _) = problem.instance(6), problem.evaluation_point(6)
    pattern = replace(problem.sparsity(6), colors=np.arange(6) % 2)
    products = np.array([problem.hvp(x, d, inst.data) for d in pattern.directions()])
    assert not np.allclose(pattern.decompress(products), problem.sparse_hess(x, inst.data))


@pytest.mark.parametrize("name, colours", [("rosenbrock_chain", 3), ("logcosh_sep", 1), ("stencil_energy", 5)])
def test_asdex_gives_the_hand_derived_nonzeros_with_few_colours(name, colours):
    pytest.importorskip("asdex")
    jax_backend = ready("jax")
    problem = problems.get(name)
    n = 12
    inst = problem.instance(n)
    x_np, _ = problem.evaluation_point(n)
    data, x = converted(jax_backend, inst, x_np)
    (variant,) = jax_backend.functions(problem, "autodiff")["sparse_hess"].values()
    compiled, compile_s = jax_backend.compile(variant, (x, data))
    np.testing.assert_allclose(np.asarray(compiled(x, data)), problem.sparse_hess(x_np, inst.data),
                               rtol=1e-12, atol=1e-12)
    assert compile_s > 0 and variant.note.startswith(f"asdex: {colours} colours")


def test_a_sweep_checks_every_backends_nonzeros_and_catches_a_wrong_one(tmp_path, registry):
    problem = problems.get("rosenbrock_chain")
    wrong = problems.Problem(**{**{f: getattr(problem, f) for f in problem.__dataclass_fields__},
                                "name": "rosenbrock_chain_wrong",
                                "sparse_hess": lambda x, data: problem.sparse_hess(x, data) * 1.001})
    problems.define(wrong)
    out = tmp_path / "sparse.csv"
    bench.run(problems=["rosenbrock_chain", "rosenbrock_chain_wrong"], tasks=["eval"], derivatives=["sparse_hess"],
              n=[30], backends=["numpy", "torch", "jax"], passes=1, max_passes=1, rounds=2, sample_time=0.001,
              out=out, progress=False)
    rows = read_results([out])
    right = rows[rows["problem"] == "rosenbrock_chain"]
    lacking = right[right["variant"] == "none"]  # torch has no sparse autodiff: a row says so
    assert set(lacking["backend"]) == {"torch"} and set(lacking["status"]) == {"skipped"}
    assert lacking["message"].str.contains("torch has no sparse autodiff").all()
    right = right[right["variant"] != "none"]
    assert set(right["status"]) == {"ok"}
    assert set(map(tuple, right[["backend", "variant"]].drop_duplicates().to_numpy())) >= {
        ("numpy", "eager"), ("torch", "eager"), ("jax", "jit"), ("jax", "asdex")}
    assert (right["rel_err"] < 1e-12).all()
    assert right.loc[right["variant"] == "asdex", "message"].str.startswith("asdex: 3 colours").all()
    caught = rows[(rows["problem"] == "rosenbrock_chain_wrong") & (rows["mode"] == "analytic")]
    assert set(caught["status"]) == {"wrong"} and set(caught["backend"]) == {"numpy", "torch", "jax"}


@pytest.mark.parametrize("backend_name", ["numpy", "jax"])
def test_newton_with_the_sparse_hessian_takes_the_dense_newtons_iterates(backend_name):
    backend = ready(backend_name)
    problem = problems.get("stencil_energy")
    inst = problem.instance(6)
    data, x0 = converted(backend, inst, inst.x0)
    (value_and_grad, *_) = backend.value_and_grad(problem, "analytic").values()
    steps = [backend.asarray(np.asarray(t), "cpu") for t in STEPS]
    runs = {}
    for kind in ("hess", "sparse_hess"):
        (variant, *_) = backend.functions(problem, "analytic")[kind].values()
        fns = {name: backend.fuse(piece) for name, piece in pieces(kind, value_and_grad, variant).items()}
        if kind == "sparse_hess":
            fns["direction"] = sparse_direction(variant, problem.sparsity(6), backend, "cpu")
        iterates = []
        run = newton_type(kind, fns, x0, data, read=backend.to_numpy, steps=steps, f_star=inst.f_star, eps=EPS,
                          max_iter=50, on_iterate=lambda x, t, seen=iterates: seen.append(backend.to_numpy(x).copy()))
        assert run.status == "ok" and run.f - inst.f_star <= EPS
        runs[kind] = (run.iterations, run.hess_calls, iterates)
    assert runs["hess"][:2] == runs["sparse_hess"][:2]
    for dense, sparse in zip(runs["hess"][2], runs["sparse_hess"][2]):
        np.testing.assert_allclose(sparse, dense, rtol=1e-10, atol=1e-12)


def test_a_pattern_out_of_csr_order_is_refused():
    i = np.arange(3)
    with pytest.raises(ValueError, match="CSR order"):
        problems.Sparsity(i[::-1].copy(), i[::-1].copy(), np.zeros(3, dtype=np.int64))
