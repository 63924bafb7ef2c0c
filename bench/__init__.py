"""nablabench: what automatic differentiation costs next to hand-derived derivatives.

From Python (bench.api): `bench.run(...)`, `bench.check(...)`, `bench.compare(a, b)`,
`bench.report(results, out=...)`, `bench.Results.load(csv)`. They are loaded on first use, so that
the worker processes, which import bench.cells, never import pandas or the API. (A submodule
named like one of these functions would replace it on import: hence derivative_check, verdicts
and html_report.)

The modules, from the leaves up:

    schema      the result key, variant key, family, row statuses, label(): imported by all below
    defaults    every default of a sweep and of a comparison
    timing      measuring callables: samples, calibration, interleaved rounds (measures only)
    intervals   the statistics: per-pass estimates, t-intervals over passes, the change between runs
    gd          gradient descent to f - f* <= eps, one loop for every backend
    cells       one part of a cell inside a worker: check, compile, warm, time
    callgrind   valgrind's callgrind: client requests, the worker's command line, dumps read back
    counting    one eval cell counted inside a worker under callgrind (--measure instructions)
    workers     one subprocess per backend and device
    executors   where parts run: the executor seam, the local executor, one part on this machine
    cluster     the Dask executor (a peer of the local one)
    presets     named sweeps (jobs)
    runner      the sweep: plan, passes, the stopping rule, resume, the ETA; writes every row
    results     the CSV: columns, the sink, reading back; the metadata beside it
    summary     tables with intervals (NAME.summary.csv), paired ratios
    derivative_check   `nablabench check`: formulas vs finite differences, consistency, every autodiff
    verdicts    verdicts between runs and the gate's structural failures; ci, the CI gate on top
    counts      counted runs read back and compared (the count gate)
    findings, plots, html_report, catalogue, history   what a reader sees
    api         the Python API: validate options, run, check, compare, report; results objects
    cli         argparse -> the API
"""
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Check", "Comparison", "Results", "UsageError", "check", "compare", "report", "run"]

if TYPE_CHECKING:
    from .api import Check, Comparison, Results, UsageError, check, compare, report, run


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
