"""How large a row block the fused gradient wants: least squares' gradient at one n, as written and fused
at several block sizes, interleaved rounds, with its floor at the measured memory bandwidth.

    python scripts/fused_blocks.py --n 10000 --rounds 10
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import problems
from problems import _blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--blocks-kib", default="128,256,512,1024,2048,8192")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from bench.measure.roofline import measure

    with threadpool_limits(1):
        roofs = measure("cpu", 1, rounds=5)
        p = problems.get("least_squares")
        inst = p.instance(args.n)
        x, _ = p.evaluation_point(args.n)
        a = inst.data["A"]
        variants = {"as written": lambda: p.grad(x, inst.data), "one pass, A @ x": lambda: a @ x}
        for kib in map(int, args.blocks_kib.split(",")):
            def fused(kib=kib):
                _blocks.BLOCK_BYTES = kib * 2**10
                return p.fused["grad"](x, inst.data)
            variants[f"fused {kib} KiB"] = fused
        reference = p.grad(x, inst.data)
        for name, call in variants.items():
            if name.startswith("one pass"):
                continue  # not a gradient: how fast the BLAS reads A once
            assert np.allclose(call(), reference, rtol=1e-10, atol=1e-12), name
        times = {name: [] for name in variants}
        rng = np.random.default_rng(0)
        for _ in range(args.rounds):
            for name in rng.permutation(list(variants)):
                start = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - start)
    floor = p.cost("grad", args.n).bytes / (roofs["bandwidth_GBps"] * 1e9)
    print(f"n = {args.n}: floor {floor * 1e3:.2f} ms (8 n^2 bytes at {roofs['bandwidth_GBps']:.1f} GB/s); "
          "caches " + ", ".join(f"{k}: {v['bytes'] >> 10} KiB" for k, v in roofs["caches"].items()))
    for name, samples in times.items():
        median = float(np.median(samples))
        print(f"  {name:16s} median {median * 1e3:8.2f} ms  min {min(samples) * 1e3:8.2f} ms  "
              f"time / floor {median / floor:5.2f}")


if __name__ == "__main__":
    main()
