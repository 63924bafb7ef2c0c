"""What the array-API layer costs per call inside the timed formulas, per backend.

    python scripts/namespace_overhead.py            (one process per backend, pinned to the last CPU)

For numpy, torch and autograd: the lookup alone (array_api_compat.array_namespace against problems'
own array_namespace), and whole calls at n = 10 (f, the hand-written gradient and the backend's
first autodiff gradient of least squares, logistic and lse) with each of the two in place, in
interleaved rounds so that drift lands on both.
Printed: the median over rounds of each time and their difference, in microseconds per call. JAX
is not measured: it traces a formula once and its compiled program has no namespace left in it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 15
PROBLEMS = ("least_squares", "logistic", "lse")


def measure(backend: str) -> None:
    import importlib

    import array_api_compat
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import backends
    import problems
    from problems import _xp

    b = backends.get(backend)
    b.setup(1)
    modules = {name: importlib.import_module(problems.get(name).f.__module__) for name in PROBLEMS}

    def calls():
        out = {}
        for name in PROBLEMS:
            p = problems.get(name)
            inst = p.instance(10)
            data = {k: b.asarray(v, "cpu") if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
            x = b.asarray(p.evaluation_point(10)[0], "cpu")
            out[f"{name} f"] = lambda p=p, x=x, data=data: p.f(x, data)
            out[f"{name} grad"] = lambda p=p, x=x, data=data: p.grad(x, data)
            if "autodiff" in b.modes:  # autodiff's f pays the lookup too (traced, in autograd)
                variant, fn = next(iter(b.functions(p, "autodiff")["grad"].items()))
                out[f"{name} grad {variant}"] = lambda fn=fn, x=x, data=data: fn(x, data)
        x = b.asarray(np.ones(10), "cpu")
        out["lookup"] = lambda x=x: modules["least_squares"].array_namespace(x)
        return out

    table = {}
    for _ in range(ROUNDS):
        for which, lookup in (("compat", array_api_compat.array_namespace), ("ours", _xp.array_namespace)):
            for module in modules.values():
                module.array_namespace = lookup
            for name, call in calls().items():
                number = 2000
                seconds = min(timeit.repeat(call, number=number, repeat=3)) / number
                table.setdefault(name, {}).setdefault(which, []).append(seconds * 1e6)
    print(f"== {backend} (n = 10; microseconds per call, median of {ROUNDS} rounds)")
    for name, sides in table.items():
        compat, ours = float(np.median(sides["compat"])), float(np.median(sides["ours"]))
        print(f"  {name:22} compat {compat:7.2f}  ours {ours:7.2f}  "
              f"saved {compat - ours:6.2f} ({(compat - ours) / compat:5.1%})")


def main() -> int:
    if len(sys.argv) > 1:
        measure(sys.argv[1])
        return 0
    last = sorted(os.sched_getaffinity(0))[-1]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for backend in ("numpy", "torch", "autograd"):
        subprocess.run(["taskset", "-c", str(last), sys.executable, __file__, backend], check=True, env=env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
