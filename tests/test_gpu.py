"""CUDA paths: skipped with the reason where no GPU is visible; the CPU path is tested elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

import backends
import problems
from helpers import ready as _ready


def _cuda_backend(name):
    b = _ready(name)
    if "cuda" not in b.devices():
        pytest.skip(f"{name} sees no CUDA GPU here")
    return b


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("problem", problems.names())
def test_every_variant_on_cuda_matches_numpy(name, problem):
    b = _cuda_backend(name)
    p = problems.get(problem)
    inst = p.instance(64, seed=3)
    rng = np.random.default_rng(0)
    x_np, v_np = rng.standard_normal(64) / 8, rng.standard_normal(64)
    data = {k: b.asarray(v, "cuda") if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
    x, v = b.asarray(x_np, "cuda"), b.asarray(v_np, "cuda")
    for mode in b.modes:
        for derivative, variants in b.functions(p, mode).items():
            expected = getattr(p, derivative)(*((x_np, v_np) if derivative == "hvp" else (x_np,)), inst.data)
            for variant, fn in variants.items():
                out = fn(x, v, data) if derivative == "hvp" else fn(x, data)
                b.sync(out)
                np.testing.assert_allclose(b.to_numpy(out), expected, rtol=1e-10, atol=1e-12,
                                           err_msg=f"{name} {mode} {derivative} {variant}")


def test_cuda_sweep_writes_gpu_rows_and_metadata(tmp_path):
    names = [n for n in ("torch", "jax") if backends.get(n).available()[0] and "cuda" in _ready(n).devices()]
    if not names:
        pytest.skip("no backend sees a CUDA GPU here")
    from bench.cli import main
    from bench.results import read_results

    out = tmp_path / "gpu.csv"
    assert main(["run", "--devices", "cuda", "--backends", ",".join(names), "--problems", "least_squares",
                 "--n", "100,1000", "--tasks", "eval,solve", "--derivatives", "grad,hvp", "--samples", "3",
                 "--no-progress", "--out", str(out)]) == 0
    df = read_results([out])
    assert set(df["device"]) == {"cuda"} and (df["status"] == "ok").all()
    assert df[df["task"] == "eval"]["peak_mem_bytes"].notna().any()
    meta = out.with_suffix(".meta.json").read_text()
    assert "gpu" in meta
