"""GPU check: nablabench's per-call time against a bare synchronised loop of the same call.

    python scripts/gpu_bare_loop.py                       # the table
    python scripts/gpu_bare_loop.py --summary RESULTS.csv...  # time to eps from sweep CSVs

For least squares at n = 10^4 in float64 on CUDA: torch analytic and backward gradients, JAX
analytic and autodiff gradients. Each is timed three ways, in turn over several rounds: a bare loop
that synchronises after every call, a bare loop that synchronises once at the end, and nablabench's
`measure`. Prints a table with harness / bare ratios (target: within 15%). With --summary it prints
the time to eps per n, device, backend and mode from sweep CSVs, and the CPU / CUDA ratio.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backends  # noqa: E402
import problems  # noqa: E402

from bench.measure.timing import measure  # noqa: E402

N = 10_000
LOOPS = 100
ROUNDS = 7


def bare(call, sync, *, each: bool) -> float:
    """Seconds per call of a plain loop: synchronised after every call, or once at the end."""
    start = time.perf_counter()
    for _ in range(LOOPS):
        out = call()
        if each:
            sync(out)
    sync(out)
    return (time.perf_counter() - start) / LOOPS


def interleaved(call, sync) -> tuple[float, float, float, float]:
    """Medians over ROUNDS rounds of (bare sync-each, bare sync-end, nablabench), taken in turn so
    that a drift of the GPU's state (clocks, other tenants) hits all three alike; and the spread
    (IQR / median) of the bare sync-each loop across rounds."""
    for _ in range(10):
        sync(call())
    rounds = [(bare(call, sync, each=True), bare(call, sync, each=False),
               measure(call, sync=sync, samples=3, min_sample_s=0.05).median) for _ in range(ROUNDS)]
    each, end, harness = (np.median(column) for column in zip(*rounds))
    spread = float(np.subtract(*np.percentile([r[0] for r in rounds], [75, 25])) / each)
    return float(each), float(end), float(harness), spread


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


def summary(paths) -> int:
    """Time to eps per n, device, backend and mode (median of runs), and the best CPU / best CUDA ratio."""
    from bench.sweep.results import read_results

    df = read_results(paths)
    solve = df[(df["task"] == "solve") & (df["status"] == "ok")]
    if solve.empty:
        print("no finished solve rows")
        return 1
    table = solve.pivot_table(index=["n"], columns=["device", "backend", "mode", "variant"], values="time_s",
                              aggfunc="median") * 1e3
    print("time to eps, least_squares, ms (median of runs):")
    print(table.round(3).T.to_string())
    medians = solve.groupby(["n", "device", "backend", "mode", "variant"])["time_s"].median()
    best = medians.groupby(["n", "device"]).min().unstack()
    if {"cpu", "cuda"} <= set(best.columns):
        print("\nfastest CPU variant / fastest CUDA variant (time to eps):")
        print((best["cpu"] / best["cuda"]).dropna().round(2).to_string())
    bad = df[df["status"] != "ok"]
    print(f"\nrows not ok: {len(bad)}"
          + ("" if bad.empty else "\n" + bad[["device", "backend", "task", "n", "status", "message"]].to_string()))
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--summary"]:
        return summary(sys.argv[2:])
    rows = [(label, *interleaved(call, sync)) for label, call, sync in cases()]
    print(f"per-call gradient, least_squares n={N}, float64, CUDA; medians of {ROUNDS} interleaved rounds")
    print(f"{'call':28} {'bare, sync each':>16} {'(spread)':>9} {'bare, sync end':>15} {'nablabench':>11} "
          f"{'/ sync each':>12} {'/ sync end':>11}")
    worst = 0.0
    for label, each, end, harness, spread in rows:
        worst = max(worst, abs(harness / each - 1))
        print(f"{label:28} {each * 1e3:13.3f} ms {spread:8.1%} {end * 1e3:12.3f} ms {harness * 1e3:8.3f} ms "
              f"{harness / each:12.3f} {harness / end:11.3f}")
    print(f"\nlargest |nablabench / bare (sync each) - 1| = {worst:.1%} (target <= 15%)" if rows else "no CUDA backend")
    return 0 if rows and worst <= 0.15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
