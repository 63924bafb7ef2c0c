"""GPU check: nablabench's per-call time against a bare synchronised loop of the same call.

    python scripts/gpu_bare_loop.py [RESULTS.csv]

For least squares at n = 10^4 in float64 on CUDA: torch analytic and backward gradients, JAX
analytic and autodiff gradients. Each is timed three ways in this one script: a bare loop that
synchronises after every call, a bare loop that synchronises once at the end, and nablabench's
`measure`. Prints a table, last, with harness / bare ratios (target: within 15%); with a results
CSV from a GPU sweep it adds the time to eps per backend and mode at the largest n.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backends  # noqa: E402
import problems  # noqa: E402
from bench.timing import measure  # noqa: E402

N = 10_000
LOOPS = 200


def bare(call, sync, *, each: bool) -> float:
    for _ in range(10):
        sync(call())
    sync(call())
    start = time.perf_counter()
    for _ in range(LOOPS):
        out = call()
        if each:
            sync(out)
    sync(out)
    return (time.perf_counter() - start) / LOOPS


def cases():
    p = problems.get("least_squares")
    inst = p.instance(N)
    x_np = np.random.default_rng(0).standard_normal(N) / np.sqrt(N)
    for name, mode in (("torch", "analytic"), ("torch", "autodiff"), ("jax", "analytic"), ("jax", "autodiff")):
        b = backends.get(name)
        if not b.available()[0] or "cuda" not in b.devices():
            continue
        b.setup(1)
        data = {k: b.asarray(v, "cuda") for k, v in inst.data.items()}
        x = b.asarray(x_np, "cuda")
        variant, fn = next(iter(b.functions(p, mode)["grad"].items()))
        fn, _ = b.compile(fn, (x, data))
        np.testing.assert_allclose(b.to_numpy(fn(x, data)), p.grad(x_np, inst.data), rtol=1e-8)
        yield f"{name} {mode} ({variant})", (lambda fn=fn, x=x, data=data: fn(x, data)), b.sync


def main() -> int:
    rows = []
    for label, call, sync in cases():
        each, end = bare(call, sync, each=True), bare(call, sync, each=False)
        harness = measure(call, sync=sync, samples=7, min_sample_s=0.05).median
        rows.append((label, each, end, harness))
    if len(sys.argv) > 1:
        from bench.results import read_results

        df = read_results([sys.argv[1]])
        solve = df[(df["task"] == "solve") & (df["status"] == "ok")]
        if not solve.empty:
            top = solve[solve["n"] == solve["n"].max()]
            print(f"\ntime to eps, least_squares n={int(top['n'].max())} (median of runs; iterations):")
            for key, g in top.groupby(["device", "backend", "mode", "variant"]):
                print(f"  {' '.join(key):40} {g['time_s'].median() * 1e3:9.2f} ms  {int(g['iterations'].median())}")
    print(f"\nper-call gradient, least_squares n={N}, float64, CUDA")
    print(f"{'call':28} {'bare, sync each':>16} {'bare, sync end':>15} {'nablabench':>11} {'/ sync each':>12} {'/ sync end':>11}")
    worst = 0.0
    for label, each, end, harness in rows:
        worst = max(worst, abs(harness / each - 1))
        print(f"{label:28} {each * 1e3:13.3f} ms {end * 1e3:12.3f} ms {harness * 1e3:8.3f} ms "
              f"{harness / each:12.3f} {harness / end:11.3f}")
    print(f"\nlargest |nablabench / bare (sync each) - 1| = {worst:.1%} (target <= 15%)" if rows else "no CUDA backend")
    return 0 if rows and worst <= 0.15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
