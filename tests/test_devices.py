"""Workers know their device: a CPU worker starts no GPU runtime and synchronises nothing on a
GPU; what a GPU run records (throughput beside latency, planned memory) is exercised on the CPU
where it can be."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import stat

import numpy as np
import pytest
from helpers import ready

import problems

from bench.cli import main
from bench.core.cell import Cell
from bench.measure.cells import run_cell
from bench.measure.context import Context
from bench.sweep.results import read_results


def test_the_torch_cpu_path_never_calls_into_torch_cuda(monkeypatch):
    # A GPU that torch believes is there and already initialised: before, setup read its
    # properties and every CPU call was followed by torch.cuda.synchronize().
    torch = pytest.importorskip("torch")
    backend = ready("torch")

    def refuse(*args, **kwargs):
        raise AssertionError("a CPU worker called into torch.cuda")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    for name in ("synchronize", "get_device_properties", "reset_peak_memory_stats", "memory_allocated",
                 "max_memory_allocated", "init", "current_device"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    info = backend.setup(1, "cpu")
    assert "gpu" not in info
    ctx = Context(backend)
    for task, derivative in (("eval", "grad"), ("eval", "hvp"), ("solve", "gd")):
        cell = Cell(task=task, problem="least_squares", n=16, backend="torch", device="cpu", derivative=derivative,
                    modes=("analytic", "autodiff"), rounds=3, max_rounds=3, repeats=3, min_sample_s=0.001)
        rows = [r for kind, batch in run_cell(cell, ctx) if kind == "rows" for r in batch]
        assert {r["status"] for r in rows} == {"ok"}, [r["message"] for r in rows]


def test_cpu_workers_hide_the_gpus_before_any_framework_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # as on a GPU box
    out = tmp_path / "r.csv"
    assert main(["run", "--backends", "jax,torch", "--problems", "least_squares", "--tasks", "eval",
                 "--derivatives", "grad", "--n", "8", "--rounds", "1",
                 "--max-passes", "2", "--sample-time", "0.001", "--no-progress",
                 "--out", str(out)]) == 0
    (meta,) = json.loads(out.with_suffix(".meta.json").read_text()).values()
    for worker in ("jax/cpu", "torch/cpu"):
        assert meta["backends"][worker]["gpu_env"] == {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    assert all("cpu" in d.lower() for d in meta["backends"]["jax/cpu"]["jax_devices"])
    df = read_results([out])
    assert df["throughput_s"].isna().all()  # latency only on the CPU


def test_jax_reports_the_memory_its_compiled_program_plans():
    # On a GPU the allocator's peak cannot be reset per variant; XLA's memory analysis can say
    # what each compiled variant needs. A dense Hessian at n = 200 holds at least 200^2 doubles.
    backend = ready("jax")
    p = problems.get("least_squares")
    inst = p.instance(200)
    data = {k: backend.asarray(v, "cpu") for k, v in inst.data.items()}
    x = backend.asarray(np.ones(200), "cpu")
    compiled, _ = backend.compile(backend.functions(p, "autodiff")["hess"]["hessian"], (x, data))
    assert 200 * 200 * 8 <= backend.planned_bytes(compiled) < 50 * 200 * 200 * 8
    small, _ = backend.compile(backend.functions(p, "autodiff")["grad"]["jit"], (x, data))
    assert backend.planned_bytes(small) < backend.planned_bytes(compiled) / 10


def test_jax_gradient_descent_gets_its_step_size_as_a_device_array():
    import jax

    backend = ready("jax")
    seen = []

    def recording_step(vg):
        step = backend.step(vg)

        def record(x, data, step_size):
            seen.append(type(step_size))
            return step(x, data, step_size)

        return record

    spy = dataclasses.replace(backend, step=recording_step, compile=lambda fn, args: (fn, None))
    cell = Cell(task="solve", problem="least_squares", n=16, backend="jax", device="cpu", derivative="gd",
                modes=("autodiff",), rounds=3, max_rounds=3)
    rows = [r for kind, batch in run_cell(cell, Context(spy)) if kind == "rows" for r in batch]
    assert {r["status"] for r in rows} == {"ok"}
    assert seen and all(issubclass(t, jax.Array) for t in seen)  # never a Python float


def test_a_failing_nvidia_smi_says_the_gpu_memory_guard_is_off(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    from bench.sweep.executors import Settings, available_bytes
    from bench.sweep.runner import run_sweep

    free, problem = available_bytes("cuda")
    assert math.isinf(free) and "memory guard is off" in problem
    cells = [Cell(task="eval", problem="least_squares", n=8, backend="numpy", device="cuda", derivative="grad",
                  modes=("analytic",), rounds=3, max_rounds=3, passes=1, max_passes=1)]  # numpy runs anywhere
    out = tmp_path / "r.csv"
    run_sweep(cells, Settings(backends=("numpy",), devices=("cuda",)), out, resume=False,
              progress=False)
    (meta,) = json.loads(out.with_suffix(".meta.json").read_text()).values()
    assert any("memory guard is off" in w for w in meta["warnings"])
    assert "memory guard is off" in capsys.readouterr().err
