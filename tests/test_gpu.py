"""CUDA paths: skipped with the reason where no GPU is visible; the CPU path is tested elsewhere.

Where nvidia-smi sees a GPU, a framework that is installed but cannot use it fails the test
(a missing CUDA plugin must not pass as a skip)."""
from __future__ import annotations

import json

import pytest
from helpers import check_every_variant, expected_kinds
from helpers import ready as _ready

import backends
import problems

from bench.core import environment

GPU_BACKENDS = [name for name in backends.names() if "cuda" in backends.get(name).accelerators]
if not environment.gpus():  # one skip for the module, not one per case
    pytest.skip("no NVIDIA GPU here (nvidia-smi lists none)", allow_module_level=True)


def _cuda_backend(name):
    b = _ready(name)
    if "cuda" not in b.devices():
        if environment.gpus():
            pytest.fail(f"nvidia-smi sees {environment.gpus()[0]['name']}, but {name} does not: its CUDA "
                        "backend is missing or broken")
        pytest.skip(f"no CUDA GPU here (nvidia-smi sees none, and {name} sees none)")
    return b


@pytest.mark.parametrize("name", GPU_BACKENDS)
@pytest.mark.parametrize("problem", problems.built_in())
def test_every_variant_on_cuda_matches_numpy(name, problem):
    p = problems.get(problem)
    b = _cuda_backend(name)
    assert check_every_variant(b, p, 64, device="cuda") == expected_kinds(b, p)


def test_cuda_sweep_writes_gpu_rows_and_metadata(tmp_path):
    names = [n for n in GPU_BACKENDS if backends.get(n).available()[0]]
    names = [n for n in names if "cuda" in _cuda_backend(n).devices()]
    from bench.cli import main
    from bench.sweep.results import read_results

    out = tmp_path / "gpu.csv"
    assert main(["run", "--devices", "cuda", "--backends", ",".join(names), "--problems", "least_squares",
                 "--n", "100,1000", "--tasks", "eval,solve", "--derivatives", "grad,hvp", "--rounds", "1",
                 "--max-passes", "2",
                 "--no-progress", "--out", str(out)]) == 0
    df = read_results([out])
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["backend", "variant", "message"]]
    for name in names:  # every backend that sees the GPU ran on it, both modes
        mine = df[df["backend"] == name]
        assert set(mine["device"]) == {"cuda"} and set(mine["mode"]) == {"analytic", "autodiff"}, name
        ev = mine[mine["task"] == "eval"]
        assert ev["peak_mem_bytes"].notna().all() and (ev["peak_mem_bytes"] > 0).any(), name
        assert ev["throughput_s"].notna().all() and (ev["throughput_s"] > 0).all(), name
    (meta,) = json.loads(out.with_suffix(".meta.json").read_text()).values()
    for name in names:
        worker = meta["backends"][f"{name}/cuda"]
        assert worker["device"] == "cuda", name
    if "torch" in names:
        assert meta["backends"]["torch/cuda"]["gpu"]  # the device's name, from the CUDA worker
    if "jax" in names:
        assert any("cuda" in d.lower() or "gpu" in d.lower() for d in meta["backends"]["jax/cuda"]["jax_devices"])
