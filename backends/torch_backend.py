"""PyTorch, eager: analytic formulas on tensors, and autograd by `backward` or by `torch.func`.

Data are shared with the numpy instance on the CPU (torch.from_numpy, read only), copied once to
a GPU. On CUDA, `sync` waits for the device before a clock is read.
"""
from __future__ import annotations

import numpy as np

from ._protocol import Backend, analytic_functions, eager_step, has_module, no_compile


def setup(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda)
    return info


def _devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _asarray(a: np.ndarray, device: str):
    import torch

    return torch.from_numpy(a).to(device)


def _sync(out):
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _grad_backward(f):
    def grad(x, data):
        x = x.detach().requires_grad_(True)
        f(x, data).backward()
        return x.grad

    return grad


def _value_and_grad_backward(f):
    def value_and_grad(x, data):
        x = x.detach().requires_grad_(True)
        value = f(x, data)
        value.backward()
        return value.detach(), x.grad

    return value_and_grad


def _functions(problem, mode):
    if mode == "analytic":
        return analytic_functions(problem)
    import torch
    from torch.func import grad, hessian, jacrev, jvp

    f = problem.f

    def hvp_rev_rev(x, v, data):  # double backward: torch's fastest HVP on CPU
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x, data), x, create_graph=True)
        if not g.requires_grad:  # f is linear in x: its gradient is a constant, its HVP zero
            return torch.zeros_like(x)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
        return hv

    def hvp_fwd_rev(x, v, data):
        return jvp(lambda y: grad(f)(y, data), (x,), (v,))[1]

    return {
        "grad": {"backward": _grad_backward(f), "func": grad(f)},
        "hvp": {"rev-rev": hvp_rev_rev, "fwd-rev": hvp_fwd_rev},
        "hess": {"func.hessian": hessian(f), "jacrev-jacrev": jacrev(jacrev(f))},
    }


def _value_and_grad(problem, mode):
    if mode == "analytic":
        return {"eager": problem.value_and_grad}
    from torch.func import grad_and_value

    by_func = grad_and_value(problem.f)
    return {"backward": _value_and_grad_backward(problem.f),
            "func": lambda x, data: by_func(x, data)[::-1]}


def _gpu_peak_memory(device: str):
    if device != "cuda":
        return None
    import torch

    def reset() -> float:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return float(torch.cuda.memory_allocated())

    return reset, lambda: float(torch.cuda.max_memory_allocated())


backend = Backend(
    name="torch",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("torch"),
    setup=setup,
    devices=_devices,
    asarray=_asarray,
    to_numpy=lambda t: t.detach().cpu().numpy(),
    to_float=lambda t: float(t.item()),
    sync=_sync,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=no_compile,
    step=eager_step,
    gpu_peak_memory=_gpu_peak_memory,
)
