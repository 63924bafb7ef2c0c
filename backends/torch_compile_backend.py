"""PyTorch compiled: the torch backend's functions under `torch.compile` (default backend, inductor).

Does torch.compile close the gap between autodiff and a hand-written formula? Here both sides are
compiled, each as one graph (`fullgraph=True`; a graph break is a `skipped` row quoting Dynamo, as
for `backward`, whose `Tensor.backward()` Dynamo does not trace): the analytic formula (`compile`),
and autodiff's gradient by `torch.func.grad` (`func`) and by `backward` (`backward`), its HVPs
(`fwd-rev`: jvp of grad; `rev-rev`: double backward) and its Hessian (`func.hessian`) and Jacobians,
each as the torch backend builds it, wrapped in torch.compile. What torch.compile cannot do is a
`skipped` row quoting it: double backward ("does not currently support double backward" in torch
2.13). A descent step is compiled whole (f, gradient and update in one graph).

Compile time is measured apart and cold: each variant enters Dynamo through a code object of its own
(`_fresh`), and inductor's caches (FX graph, AOT autograd) are off in this backend's worker, so each
variant pays its own compile (the process's first compile also pays for importing inductor); the
formula is called once eagerly first, so that Dynamo does not trace the first-call path of the
formulas' namespace lookup (whose cache then changes under it and forces a recompile on the second
call: f at n = 100 took 7.9 ms on its second call, 0.1 ms after).
Not selected unless asked for (`--backends torch-compile`, or the `frameworks` preset): compiling
costs about 0.4 to 3 s a variant here, which `make bench`'s time goal does not hold.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
import types

from . import torch_backend as eager
from ._protocol import LACKING, Backend, Infeasible, eager_step, has_module

# torch.compile's words for what it cannot do (the second: torch.func.hessian recompiled for a Newton
# step's new iterate, which Dynamo fails to trace through functorch's levels in torch 2.13)
UNSUPPORTED = ("does not currently support", "Dynamo failed to run FX node with fake tensors")
# Variants built on double backward (create_graph=True), which AOT autograd does not support: it
# fails in several words ("does not currently support double backward"; "compiled with non-empty
# donated buffers which requires create_graph=False"; "appears to not have been used in the graph"
# for least squares' linear gradient), each the same limitation.
DOUBLE_BACKWARD = ("rev-rev",)


def setup(threads: int, device: str = "cpu") -> dict:
    # before torch is imported in this worker: inductor reads these once. Its C++ kernels are kept
    # on disk too (TORCHINDUCTOR_CACHE_DIR): a cache of this worker's own keeps every compile cold.
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")
    os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="nablabench-inductor-"))
    info = eager.setup(threads, device)
    import torch._functorch.config as functorch
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = False
    functorch.enable_autograd_cache = False
    info.update(torch_compile_backend="inductor", inductor_fx_graph_cache=inductor.fx_graph_cache)
    return info


_ENTRIES = itertools.count()


def _fresh(python_fn):
    """python_fn behind an entry function of its own code object. Dynamo keeps its compiled graphs
    on the code object it starts from: without this, a formula met again (the next size, another
    cell) would find its earlier graphs there and recompile them with dynamic shapes, and
    torch.func's wrappers, whose code every problem shares, would reach Dynamo's recompile limit and
    run eagerly, silently. A fresh code object makes every variant's compile cold and static."""

    def entry(*args):
        return python_fn(*args)

    code = entry.__code__.replace(co_name=f"nablabench_entry_{next(_ENTRIES)}")
    return types.FunctionType(code, entry.__globals__, code.co_name, None, entry.__closure__)


class _Compiled:
    """A function under torch.compile, with the eager one it was made from (for the warm-up and
    for a descent step compiled whole)."""

    def __init__(self, python_fn, double_backward: bool = False):
        import torch

        # fullgraph: one graph or an error; a graph break would leave frames eager, cached on code
        # objects every cell shares (warm, dynamic-shape compiles from the third size on)
        self.python_fn, self.compiled = python_fn, torch.compile(_fresh(python_fn), fullgraph=True)
        self.double_backward = double_backward

    def __call__(self, *args):
        try:
            return self.compiled(*args)
        except Exception as exc:
            import torch._dynamo.exc as dynamo

            said = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if isinstance(exc, dynamo.Unsupported):  # a graph break, which fullgraph refuses
                raise Infeasible(f"torch.compile cannot compile it as one graph: {said}"[:300]) from None
            if self.double_backward:
                raise Infeasible(
                    f"torch.compile (AOT autograd) does not support double backward; here: {said}"[:300]) from None
            if any(words in str(exc) for words in UNSUPPORTED):
                raise Infeasible(f"torch.compile cannot do it: {said}"[:300]) from None
            raise


def _compiled_variants(variants: dict) -> dict:
    return {name: _Compiled(fn, double_backward=name in DOUBLE_BACKWARD) for name, fn in variants.items()}


def _functions(problem, mode):
    if mode == "analytic":
        return {d: {"compile": _Compiled(getattr(problem, d))} for d in problem.derivatives}
    return {d: _compiled_variants(eager._AUTODIFF[d](problem)) for d in problem.derivatives if d in KINDS}


def _value_and_grad(problem, mode):
    return _compiled_variants({"compile" if mode == "analytic" else name: fn
                               for name, fn in eager._value_and_grad(problem, mode).items()})


def _step(value_and_grad):
    return _Compiled(eager_step(value_and_grad.python_fn))


def _compile(fn, args):
    """Cold (a fresh entry, `_fresh`): the first compiled call less a second one, each synchronised
    (what torch.compile cannot do raises Infeasible in the call, quoting it)."""
    if not isinstance(fn, _Compiled):
        return fn, None
    eager.backend.sync(fn.python_fn(*args))  # the namespace lookup's first call, eagerly
    seconds = []
    for _ in range(2):  # cold (compile and run), then warm: compile_s is the difference
        start = time.perf_counter()
        eager.backend.sync(fn(*args))
        seconds.append(time.perf_counter() - start)
    return fn, max(seconds[0] - seconds[1], 0.0)


KINDS = ("grad", "hvp", "hess", "jac")

backend = Backend(
    name="torch-compile",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("torch"),
    setup=setup,
    devices=eager.backend.devices,
    asarray=eager.backend.asarray,
    to_numpy=eager.backend.to_numpy,
    to_float=eager.backend.to_float,
    sync=eager.backend.sync,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=_compile,
    step=_step,
    gpu_peak_memory=eager.backend.gpu_peak_memory,
    # torch's autodiff of KINDS (not its nested dk), compiled, with the compiled formula
    pairs={variant: "compile" for variant in eager.backend.pairs
           if not variant.startswith("nested-") and variant != LACKING},
    kinds=KINDS,
    accelerators=("cuda",),
    colour="tab:pink",
    packages=("torch",),
    presets=("frameworks",),
)
