"""The machine's roofs and each cell's floor: how far a derivative is from what the hardware allows.

Roofs, measured in every run on every device it uses, in a process set up as a worker is (the
sweep's threads, its CPUs; GPUs hidden from a CPU measurement):
- memory bandwidth: STREAM's Copy and Add kernels (McCalpin) on float64 arrays of at least 4x the
  last-level cache, as the array library's own kernels, np.copyto and np.add(out=) (torch's copy_
  and add(out=) on a GPU): one pass each, no temporaries; bytes counted as STREAM counts them (2
  arrays for Copy, 3 for Add). These are the kernels the formulas and frameworks run, and no
  compiled STREAM is in the package registries this project installs from. Triad (a + s b) needs
  a fused kernel that numpy lacks, so it is left out. A matvec only reads its matrix, and reads
  run faster than Copy and Add's mix of reads and writes (A @ x at n = 10^4 beat both here), so a
  read-only pass is measured too: the BLAS's ddot over two arrays (16 bytes per element).
- peak float64 FLOP/s: a large matrix product (the BLAS's dgemm through `@`; cuBLAS on a GPU).
Each is sampled in interleaved rounds (a fresh random order each) and reported with the 95%
t-interval over its rounds (bench.core.intervals). The bandwidth roof is the fastest of Copy, Add and the read.

A cell's floor: its problem's Cost (problems.Cost) at its n, max(bytes / bandwidth, flops / peak);
for a descent, its iterations times one step's floor. over_floor = time / floor.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

# numpy is imported where it is used: the measuring process must set its threads and CPUs before
# OpenBLAS starts its pool (bench.measure.process.limit_threads)

ROUNDS = 10
MIN_ARRAY_BYTES = 128 * 2**20  # and at least 4x the last-level cache
KERNELS = ("copy", "add", "read", "dgemm")


def last_level_cache_bytes() -> int:
    """The largest CPU cache (Linux sysfs); 0 where it cannot be read."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        text = (entry / "size").read_text().strip() if (entry / "size").exists() else ""
        if text[:-1].isdigit():
            sizes.append(int(text[:-1]) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1))
    return max(sizes, default=0)


def _kernels(device: str, threads: int):
    """{kernel: (call, work)}: a callable that runs it once, synchronised, and what one call moves
    (bytes) or computes (flops)."""
    import numpy as np

    llc = last_level_cache_bytes()
    count = max(MIN_ARRAY_BYTES, 4 * llc) // 8
    if device == "cpu":
        a, b, c = (np.random.default_rng(i).standard_normal(count) for i in range(3))
        side = 1024 * max(1, math.isqrt(threads))
        m1, m2 = (np.random.default_rng(9 + i).standard_normal((side, side)) for i in range(2))
        return {"copy": (lambda: np.copyto(b, a), 16.0 * count),
                "add": (lambda: np.add(a, b, out=c), 24.0 * count),
                "read": (lambda: np.dot(a, b), 16.0 * count),
                "dgemm": (lambda: m1 @ m2, 2.0 * side**3)}, llc
    import torch

    torch.set_default_dtype(torch.float64)
    dev = torch.device(device)
    a, b, c = (torch.randn(count, device=dev) for _ in range(3))
    side = 8192
    m1, m2 = torch.randn(side, side, device=dev), torch.randn(side, side, device=dev)

    def synced(fn):
        def call():
            fn()
            torch.cuda.synchronize()
        return call

    return {"copy": (synced(lambda: b.copy_(a)), 16.0 * count),
            "add": (synced(lambda: torch.add(a, b, out=c)), 24.0 * count),
            "read": (synced(lambda: torch.dot(a, b)), 16.0 * count),
            "dgemm": (synced(lambda: m1 @ m2), 2.0 * side**3)}, llc


def measure(device: str = "cpu", threads: int = 1, rounds: int = ROUNDS, seed: int = 0) -> dict:
    """The roofs of `device` here, now: GB/s of Copy and Add and GFLOP/s of dgemm, each with its
    95% interval over `rounds` interleaved rounds, the bandwidth and peak a floor uses, and what
    was run. Call it in a process set up as a worker (`measure_like_a_worker`)."""
    import numpy as np

    from bench.core.intervals import interval

    kernels, llc = _kernels(device, threads)
    for call, _ in kernels.values():  # first touch of the arrays, the BLAS's threads
        call()
    seconds: dict[str, list[float]] = {name: [] for name in kernels}
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for name in rng.permutation(list(kernels)):
            call = kernels[name][0]
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    out: dict = {"device": device, "threads": threads, "rounds": rounds, "llc_bytes": llc,
                 "array_bytes": int(kernels["copy"][1] / 2),
                 "kernels": "STREAM Copy and Add as np.copyto / np.add(out=), a read-only pass as the BLAS's "
                            "ddot (torch copy_ / add(out=) / dot on a GPU); dgemm through @ (the BLAS, cuBLAS)"}
    for name, (_, work) in kernels.items():
        it = interval(seconds[name], np.arange(rounds))
        unit = "GFLOPs" if name == "dgemm" else "GBps"
        out[f"{name}_{unit}"] = {"estimate": work / it.estimate / 1e9, "lo": work / it.hi / 1e9,
                                 "hi": work / it.lo / 1e9}
    out["bandwidth_GBps"] = max(out[f"{name}_GBps"]["estimate"] for name in ("copy", "add", "read"))
    out["peak_GFLOPs"] = out["dgemm_GFLOPs"]["estimate"]
    return out


def _child(conn, device: str, threads: int) -> None:
    from bench.measure.process import hide_gpus, limit_threads

    if device == "cpu":
        hide_gpus()
    limit_threads(threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        try:
            conn.send(measure(device, threads))
        except Exception as exc:  # a device the library cannot drive: said, not fatal
            conn.send({"device": device, "error": f"{type(exc).__name__}: {exc}"})


def measure_like_a_worker(device: str, threads: int, timeout_s: float = 120.0) -> dict:
    """`measure` in a fresh process on the CPUs and threads a worker of the sweep gets."""
    import multiprocessing

    from bench.measure.process import main_module_hidden

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_child, args=(child, device, threads), daemon=True)
    with main_module_hidden():
        process.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            return {"device": device, "error": f"no answer in {timeout_s:g} s"}
        return parent.recv()
    except EOFError:
        return {"device": device, "error": "the measuring process died"}
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def floor_seconds(cost, roofs: dict | None, iterations: float = 1.0) -> float:
    """max(bytes / bandwidth, flops / peak) for one call (times `iterations` for a descent); nan
    without a cost model or roofs."""
    if cost is None or not roofs or "bandwidth_GBps" not in roofs or not iterations == iterations:
        return math.nan
    return iterations * max(cost.bytes / (roofs["bandwidth_GBps"] * 1e9), cost.flops / (roofs["peak_GFLOPs"] * 1e9))


def main() -> None:
    """python -m bench.measure.roofline [--threads T] [--device cpu|cuda]: this machine's roofs, as JSON."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.measure.roofline", description=main.__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(measure_like_a_worker(args.device, args.threads), indent=1))


if __name__ == "__main__":  # by its package name: the measuring process unpickles bench.measure.roofline._child
    from bench.measure.roofline import main as package_main

    package_main()
