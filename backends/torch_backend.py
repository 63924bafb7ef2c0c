"""PyTorch, eager: analytic formulas on tensors, and autograd by `backward` or by `torch.func`.

Data are shared with the numpy instance on the CPU (torch.from_numpy, read only), copied once to
a GPU. On CUDA, `sync` waits for the device before a clock is read.
"""
from __future__ import annotations

import numpy as np

from ._protocol import (
    LACKING,
    Backend,
    analytic_functions,
    eager_step,
    has_module,
    lacking,
    nested_order_check,
    no_compile,
)


def setup(threads: int, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(threads)
    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if device == "cuda":  # only a CUDA worker starts CUDA
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
    """Wait for the GPU where `out` (a tensor, or tensors in tuples, lists and dicts) lives on one;
    CPU results are ready when the call returns, and a CPU worker never calls into torch.cuda."""
    if _on_gpu(out):
        import torch

        torch.cuda.synchronize()


def _on_gpu(out) -> bool:
    if isinstance(out, (tuple, list)):
        return any(_on_gpu(o) for o in out)
    if isinstance(out, dict):
        return any(_on_gpu(o) for o in out.values())
    return getattr(out, "is_cuda", False)


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


# Measured here (tanh, 2 cores, one call): k nested backward passes took 3 ms at k = 8, 0.22 s at
# k = 12, 2.5 s at k = 14 (~3.3x per order); k nested torch.func.jvp 2.6 ms at k = 4, 1.5 s at
# k = 9, 15 s at k = 11.
NESTED_LIMITS = {"nested-backward": (12, "0.22 s per call at k=12, 2.5 s at k=14"),
                 "nested-jvp": (9, "1.5 s per call at k=9, 15 s at k=11")}


def _functions(problem, mode):
    if mode == "analytic":
        return analytic_functions(problem)
    return {d: _AUTODIFF[d](problem) for d in problem.derivatives if d in _AUTODIFF}


def _grad(problem):
    from torch.func import grad

    return {"backward": _grad_backward(problem.f), "func": grad(problem.f)}


def _hvp(problem):
    import torch
    from torch.func import grad, jvp

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

    return {"rev-rev": hvp_rev_rev, "fwd-rev": hvp_fwd_rev}


def _hess(problem):
    from torch.func import hessian, jacrev

    return {"func.hessian": hessian(problem.f), "jacrev-jacrev": jacrev(jacrev(problem.f))}


def _jac(problem):
    from torch.func import jacfwd, jacrev

    return {"jacfwd": jacfwd(problem.f), "jacrev": jacrev(problem.f)}


def _dk(problem):
    """f^(k) elementwise by k nested backward passes (create_graph) or k nested torch.func.jvp."""
    import torch
    from torch.func import jvp

    def nested_backward(x, data):
        k = problem.order(data)
        nested_order_check("torch", "nested-backward", k, NESTED_LIMITS)
        x = x.detach().requires_grad_(True)
        y = problem.f(x, data)
        for i in range(k):
            (y,) = torch.autograd.grad(y.sum(), x, create_graph=i < k - 1)
        return y

    def nested_jvp(x, data):
        k = problem.order(data)
        nested_order_check("torch", "nested-jvp", k, NESTED_LIMITS)
        g = lambda y: problem.f(y, data)  # noqa: E731
        for _ in range(k):
            g = (lambda h: lambda y: jvp(h, (y,), (torch.ones_like(y),))[1])(g)
        return g(x)

    return {"nested-backward": nested_backward, "nested-jvp": nested_jvp}


def _newton(problem):
    """grad / (H 1): double backward (GradBench's PyTorch tool: vhp with ones), or jvp of grad."""
    import torch
    from torch.func import grad, jvp

    f = problem.f

    def rev_rev(x, data):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x, data), x, create_graph=True)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=torch.ones_like(x))
        return g.detach() / hv

    def fwd_rev(x, data):
        g, hv = jvp(lambda y: grad(f)(y, data), (x,), (torch.ones_like(x),))
        return g / hv

    return {"rev-rev": rev_rev, "fwd-rev": fwd_rev}


_AUTODIFF = {"grad": _grad, "hvp": _hvp, "hess": _hess, "jac": _jac, "dk": _dk, "newton": _newton,
             "sparse_hess": lambda problem: lacking(
                 "torch has no sparse autodiff: torch.func detects no sparsity pattern and colours none (its "
                 "dense Hessian is the `hess` cell)")}


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
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
    # eager autodiff with the eager formula
    pairs=dict.fromkeys(("backward", "func", "rev-rev", "fwd-rev", "func.hessian", "jacrev-jacrev", "jacfwd", "jacrev",
                         "nested-backward", "nested-jvp", LACKING), "eager"),
    kinds=tuple(_AUTODIFF),
    accelerators=("cuda",),
    colour="tab:orange",
    packages=("torch",),
    imports=("torch", "torch._dynamo"),  # torch.func imports torch._dynamo at its first call (2.9 s here)
)
