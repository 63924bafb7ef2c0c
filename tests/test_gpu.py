"""CUDA paths: skipped with the reason where no GPU is visible; the CPU path is tested elsewhere."""
from __future__ import annotations

import pytest

import backends
import problems
from helpers import check_every_variant, ready as _ready


def _cuda_backend(name):
    b = _ready(name)
    if "cuda" not in b.devices():
        pytest.skip(f"{name} sees no CUDA GPU here")
    return b


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("problem", problems.names())
def test_every_variant_on_cuda_matches_numpy(name, problem):
    p = problems.get(problem)
    checked, declined = check_every_variant(_cuda_backend(name), p, 64, device="cuda")
    assert checked + declined >= len(p.derivatives) - 1


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
