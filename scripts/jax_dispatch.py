"""JAX's CPU async dispatch on or off: per-call time of small jitted calls, across fresh processes.

    python scripts/jax_dispatch.py [PROCESSES]      (default 6 a setting, alternating, pinned to the last CPU)
    CPUS=0-1 python scripts/jax_dispatch.py         (the processes given both CPUs instead)

With async dispatch a jitted call returns before it ran and `block_until_ready` waits for a worker
thread; a small call then pays a hand-over whose cost depends on whether that thread was awake.
Each process sets jax_cpu_enable_async_dispatch, then times least squares' jitted gradient and
its jitted f at n = 10, 100 and 1000 with nablabench's timer (synchronised every call), 7
samples of at least 10 ms each. Printed: per setting and call, the median over processes and the
spread of the processes' medians (max / min), which is what a sweep's passes would see.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 100, 1000)


def one_process(async_dispatch: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    import backends
    import problems

    from bench.measure.timing import measure

    b = backends.get("jax")
    b.setup(1)
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", async_dispatch)
    p = problems.get("least_squares")
    out = {}
    for n in SIZES:
        inst = p.instance(n)
        data = {k: b.asarray(v, "cpu") for k, v in inst.data.items()}
        x = b.asarray(p.evaluation_point(n)[0], "cpu")
        for name, fn in (("grad", jax.jit(jax.grad(p.f))), ("f", jax.jit(p.f))):
            compiled = fn.lower(x, data).compile()
            m = measure(lambda: compiled(x, data), sync=jax.block_until_ready, samples=7, min_sample_s=0.01)
            out[f"{name} n={n}"] = m.median
    return out


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(one_process(sys.argv[2] == "on")))
        return 0
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    last = os.environ.get("CPUS") or sorted(os.sched_getaffinity(0))[-1]
    env = dict(os.environ, OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    results: dict[str, list[dict]] = {"on": [], "off": []}
    for i in range(processes):
        for setting in (("on", "off") if i % 2 == 0 else ("off", "on")):
            done = subprocess.run(["taskset", "-c", str(last), sys.executable, __file__, "--one", setting],
                                  capture_output=True, text=True, env=env, check=True)
            results[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"== JAX CPU async dispatch: per-call medians over {processes} fresh processes a setting (microseconds)")
    for call in results["on"][0]:
        line = []
        for setting in ("on", "off"):
            values = np.array([r[call] for r in results[setting]]) * 1e6
            line.append(f"{setting}: median {np.median(values):8.2f}, processes {values.min():8.2f} to "
                        f"{values.max():8.2f} ({values.max() / values.min():.2f}x)")
        print(f"  {call:12} " + "   ".join(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
