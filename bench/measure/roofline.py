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
- each cache level's read bandwidth (a hierarchical roofline): the same ddot over two arrays that
  fill half of the level (sizes from sysfs), called in a loop, so that a cell whose data fit in a
  cache is priced at that cache's speed, not memory's.
Each is sampled in interleaved rounds (a fresh random order each) and reported with the 95%
t-interval over its rounds (bench.core.intervals). The memory roof is the fastest of Copy, Add and the read.

A cell's floor: its problem's Cost (problems.Cost) at its n, max(bytes / bandwidth, flops / peak),
the bandwidth that of the smallest level its bytes fit in (`level_of`); for a descent, its
iterations times one step's floor. over_floor = time / floor.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

# numpy is imported where it is used: the measuring process must set its threads and CPUs before
# OpenBLAS starts its pool (bench.measure.process.limit_threads)

ROUNDS = 10
READ_BYTES = 64 * 2**20  # a cache level's read pass moves this much a sample
MIN_ARRAY_BYTES = 128 * 2**20  # and at least 4x the last-level cache
KERNELS = ("copy", "add", "read", "dgemm")


def cache_levels() -> dict[str, int]:
    """The CPU's data caches, {"L1": bytes, "L2": ..., "L3": ...} as one core sees them (Linux sysfs);
    {} where they cannot be read."""
    found = {}
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        def read(name, entry=entry):
            return (entry / name).read_text().strip() if (entry / name).exists() else ""

        text = read("size")
        if read("type") != "Instruction" and text[:-1].isdigit():
            size = int(text[:-1]) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            found[f"L{read('level')}"] = max(size, found.get(f"L{read('level')}", 0))
    return dict(sorted(found.items()))


def last_level_cache_bytes() -> int:
    """The largest CPU cache (Linux sysfs); 0 where it cannot be read."""
    return max(cache_levels().values(), default=0)


def _cache_reads(levels: dict[str, int]) -> dict:
    """{level: (call, bytes)}: the read-only pass (ddot) over two arrays filling half of each cache level,
    repeated until a call moves at least READ_BYTES, so that the call's own overhead is small beside it."""
    import numpy as np

    out = {}
    for level, size in levels.items():
        count = max(64, size // 2 // 16)
        a, b = (np.random.default_rng(i).standard_normal(count) for i in (5, 6))
        loops = max(1, READ_BYTES // (16 * count))

        def call(a=a, b=b, loops=loops):
            for _ in range(loops):
                np.dot(a, b)

        out[f"read_{level}"] = (call, 16.0 * count * loops)
    return out


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
        s1, s2 = m1.astype(np.float32), m2.astype(np.float32)
        return {"copy": (lambda: np.copyto(b, a), 16.0 * count),
                "add": (lambda: np.add(a, b, out=c), 24.0 * count),
                "read": (lambda: np.dot(a, b), 16.0 * count),
                "dgemm": (lambda: m1 @ m2, 2.0 * side**3), "sgemm": (lambda: s1 @ s2, 2.0 * side**3),
                **_cache_reads(cache_levels())}, llc
    import torch

    torch.set_default_dtype(torch.float64)
    dev = torch.device(device)
    a, b, c = (torch.randn(count, device=dev) for _ in range(3))
    side = 8192
    m1, m2 = torch.randn(side, side, device=dev), torch.randn(side, side, device=dev)
    s1, s2 = m1.float(), m2.float()

    def synced(fn):
        def call():
            fn()
            torch.cuda.synchronize()
        return call

    return {"copy": (synced(lambda: b.copy_(a)), 16.0 * count),
            "add": (synced(lambda: torch.add(a, b, out=c)), 24.0 * count),
            "read": (synced(lambda: torch.dot(a, b)), 16.0 * count),
            "dgemm": (synced(lambda: m1 @ m2), 2.0 * side**3), "sgemm": (synced(lambda: s1 @ s2), 2.0 * side**3)}, llc


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
        unit = "GFLOPs" if name in ("dgemm", "sgemm") else "GBps"
        out[f"{name}_{unit}"] = {"estimate": work / it.estimate / 1e9, "lo": work / it.hi / 1e9,
                                 "hi": work / it.lo / 1e9}
    out["bandwidth_GBps"] = max(out[f"{name}_GBps"]["estimate"] for name in ("copy", "add", "read"))
    out["peak_GFLOPs"] = out["dgemm_GFLOPs"]["estimate"]  # float64's; float32's (sgemm) is peak_GFLOPs_float32
    out["peak_GFLOPs_float32"] = out["sgemm_GFLOPs"]["estimate"]
    # the hierarchical roofline: each cache level's size and read bandwidth, smallest first; a cell whose
    # data fit in a level is priced at that level's bandwidth (`floor_seconds`), never below memory's
    out["caches"] = {level: {"bytes": size, "GBps": max(out[f"read_{level}_GBps"]["estimate"], out["bandwidth_GBps"])}
                     for level, size in cache_levels().items() if device == "cpu"}
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


def level_of(cost, roofs: dict | None) -> tuple[str, float]:
    """Where a call's data live between calls, and that level's read bandwidth (GB/s): the smallest
    cache level (`roofs["caches"]`) that holds the bytes it must read, else memory."""
    for level, cache in (roofs or {}).get("caches", {}).items():
        if cost is not None and cost.bytes <= cache["bytes"]:
            return level, cache["GBps"]
    return "memory", (roofs or {}).get("bandwidth_GBps", math.nan)


def floor_seconds(cost, roofs: dict | None, iterations: float = 1.0, dtype: str = "float64") -> float:
    """max(bytes / bandwidth, flops / peak) for one call (times `iterations` for a descent), the
    bandwidth of the level its data fit in (`level_of`: a hierarchical roofline) and the dtype's peak
    (float32's from sgemm, where the roofs have it); nan without a cost model or roofs. `cost` counts the
    dtype's bytes (bench.analysis.floors.in_dtype)."""
    if cost is None or not roofs or "bandwidth_GBps" not in roofs or not iterations == iterations:
        return math.nan
    bandwidth = level_of(cost, roofs)[1]
    peak = roofs.get(f"peak_GFLOPs_{dtype}", roofs["peak_GFLOPs"]) if dtype != "float64" else roofs["peak_GFLOPs"]
    return iterations * max(cost.bytes / (bandwidth * 1e9), cost.flops / (peak * 1e9))


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
