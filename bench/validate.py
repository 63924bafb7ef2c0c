"""Check nablabench's timer against independent ones on known callables; print the agreement.

    python -m bench.validate            (make validate-timing)

Timers: nablabench's `measure`, `timeit` (autorange calibration, then repeat), pytest-benchmark
(pedantic, pre-warmed, same loop count) and torch.utils.benchmark.Timer (blocked_autorange).
Each callable is synchronised inside every timer. In each of ROUNDS rounds, every callable is
timed by every timer back to back, in a fresh seeded random order, so that drift on a shared
machine hits all of them alike; the verdict uses the median over rounds of
nablabench / (median of the other timers in that round), a ratio of times taken seconds apart.
Target: nablabench within 5% of the independent median for calls >= 10 us, 15% for >= 1 us.
Each library runs in its own process, on one core with one thread, and JAX with synchronous CPU
dispatch (its backend's setting, as in the sweep): the aim is to compare timers, not the
scheduler's or the runtime's moods.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import timeit
from pathlib import Path

import numpy as np

from bench.measure.timing import measure

ROUNDS = 9
SAMPLES = 7
# name -> (call with its synchronisation, loops per sample for pytest-benchmark)
CALLABLES: dict[str, tuple] = {}


def _numpy_matvec(n: int):
    rng = np.random.default_rng(n)
    a, x = rng.standard_normal((n, n)), rng.standard_normal(n)
    return lambda: a @ x


def _jax_grad(n: int):
    import backends
    import problems

    b = backends.get("jax")
    b.setup(1)  # synchronous CPU dispatch, as in the sweep and the CI suite (backends/jax_backend.py)
    import jax

    p = problems.get("least_squares")
    inst = p.instance(n)
    data = {k: b.asarray(v, "cpu") for k, v in inst.data.items()}
    x = b.asarray(np.ones(n), "cpu")
    grad = jax.jit(jax.grad(p.f)).lower(x, data).compile()
    return lambda: jax.block_until_ready(grad(x, data))


def _torch_backward(n: int):
    import torch

    import backends
    import problems

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", len(os.sched_getaffinity(0)))))
    p = problems.get("least_squares")
    inst = p.instance(n)
    data = {k: torch.from_numpy(v) for k, v in inst.data.items()}
    grad = backends.get("torch").functions(p, "autodiff")["grad"]["backward"]
    x = torch.ones(n, dtype=torch.float64)
    return lambda: grad(x, data)


GROUPS = {
    "numpy": lambda: {f"numpy matvec n={n}": _numpy_matvec(n) for n in (32, 100, 316, 1000, 3162)},
    "jax": lambda: {f"jax jit grad n={n}": _jax_grad(n) for n in (100, 1000)},
    "torch": lambda: {f"torch backward n={n}": _torch_backward(n) for n in (100, 1000)},
}


def time_nablabench(call, loops: int) -> float:
    # The check is of the timer (loop, sync, calibration): every timer gets a similar time budget
    # (SAMPLES samples of timeit's autorange length, ~0.2 s each).
    return measure(call, sync=lambda out: None, samples=SAMPLES, min_sample_s=0.02, warmup_s=0.02).median


def autorange_loops(call) -> int:
    return timeit.Timer(call).autorange()[0]


def time_timeit(call, loops: int) -> float:
    return (statistics.median(timeit.Timer(call).repeat(repeat=SAMPLES, number=max(1, loops // 10)))
            / max(1, loops // 10))


def time_torch(call, loops: int) -> float:
    from torch.utils.benchmark import Timer

    return Timer(stmt="call()", globals={"call": call}).blocked_autorange(min_run_time=0.14).median


_PYTEST_MODULE = textwrap.dedent('''
    import pytest
    from bench.validate import CALLABLES

    @pytest.mark.parametrize("name", sorted(CALLABLES))
    def test_timer(benchmark, name):
        call, loops = CALLABLES[name]
        benchmark.pedantic(call, rounds=7, iterations=loops, warmup_rounds=1)
''')


def time_pytest_benchmark(call, loops: int) -> float:
    import pytest

    from bench import validate as registry  # this file may be running as __main__

    registry.CALLABLES.clear()
    registry.CALLABLES["call"] = (call, max(1, loops // 10))
    with tempfile.TemporaryDirectory() as folder:
        test = Path(folder) / "test_validate_timer.py"
        test.write_text(_PYTEST_MODULE)
        out = Path(folder) / "bench.json"
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON result
            code = pytest.main([str(test), "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                                f"--benchmark-json={out}", "--benchmark-disable-gc", "-o", "addopts="])
        if code != 0:
            raise RuntimeError(f"pytest-benchmark run failed with exit code {code}")
        (benchmark,) = json.loads(out.read_text())["benchmarks"]
    return benchmark["stats"]["median"]


def _settle(call, seconds: float = 0.1) -> None:
    """Run the callable untimed for a while: the previous library's threads stop spinning."""
    end = timeit.default_timer() + seconds
    while timeit.default_timer() < end:
        call()


def target(seconds: float) -> float | None:
    if seconds >= 10e-6:
        return 0.05
    if seconds >= 1e-6:
        return 0.15
    return None


def measure_group(group: str) -> dict[str, dict[str, list[float]]]:
    """All timers on one library's callables, in this process (which holds no other library)."""
    # One core: otherwise the scheduler and JAX's runtime threads move a call between fast and
    # slow states from one second to the next, and the timers, taken in turn, see different states.
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    calls = GROUPS[group]()
    timers = {"nablabench": time_nablabench, "timeit": time_timeit, "pytest-benchmark": time_pytest_benchmark,
              "torch Timer": time_torch}
    results: dict[str, dict[str, list[float]]] = {name: {timer: [] for timer in timers} for name in calls}
    rng = np.random.default_rng(2026)
    for _ in range(ROUNDS):
        for name, call in calls.items():
            _settle(call)
            loops = autorange_loops(call)  # ~0.2 s of calls: each timer takes about as long
            for timer in rng.permutation(list(timers)):
                try:
                    results[name][timer].append(timers[timer](call, loops))
                except ImportError:  # torch's Timer outside the torch group's environment
                    pass
    return {name: {t: v for t, v in row.items() if v} for name, row in results.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--group"]:
        print(json.dumps(measure_group(argv[1])))
        return 0
    # One process per library, as in a sweep: no library's spinning threads slow another's calls.
    # One thread each: the check is of the timers, and on a small shared machine the scheduler's
    # placement of a second thread moves a call's time by more than the targets allow.
    one_thread = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                      XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    results = {}
    for group in GROUPS:
        done = subprocess.run([sys.executable, "-m", "bench.validate", "--group", group],
                              capture_output=True, text=True, env=one_thread)
        if done.returncode != 0:
            print(f"{group}: skipped ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'})")
            continue
        results.update(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{group}: measured", file=sys.stderr)

    timers = ["timeit", "pytest-benchmark", "torch Timer"]
    header = f"{'callable':24} {'nablabench':>11} " + " ".join(f"{t:>16}" for t in timers) + \
        f" {'ours/indep.':>11} {'target':>7} {'indep. spread':>13}  verdict"
    print(header)
    print("-" * len(header))
    failures = 0
    for name, row in results.items():
        medians = {t: statistics.median(v) for t, v in row.items()}
        ours = medians["nablabench"]
        independent = statistics.median([medians[t] for t in timers if t in medians])
        # Per round, then the median over rounds: a small JAX call switches between fast and slow
        # states that last seconds (all timers agree within a round), which a ratio of medians
        # taken over different rounds would misread as timer error.
        per_round = [mine / statistics.median([row[t][r] for t in timers if t in row])
                     for r, mine in enumerate(row["nablabench"])]
        spread = max(abs(medians[t] / independent - 1) for t in timers if t in medians)
        ratio = statistics.median(per_round)
        tolerance = target(independent)
        ok = tolerance is None or abs(ratio - 1) <= tolerance
        failures += not ok
        cols = " ".join(f"{medians[t] * 1e6:13.2f} us" if t in medians else f"{'-':>16}" for t in timers)
        print(f"{name:24} {ours * 1e6:8.2f} us {cols} {ratio:11.3f} "
              f"{'±' + format(tolerance, '.0%') if tolerance else 'none':>7} {spread:13.1%}  "
              f"{'ok' if ok else 'OUTSIDE'}")
    print(f"\n{len(results) - failures}/{len(results)} callables within target.")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
