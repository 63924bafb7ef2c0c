"""nablabench: what automatic differentiation costs next to hand-derived derivatives.

From Python (bench.api): `bench.run(...)`, `bench.check(...)`, `bench.compare(a, b)`,
`bench.report(results, out=...)`, `bench.Results.load(csv)`. They are loaded on first use, so that
the worker processes, which import bench.measure, never import pandas or the API.

The packages, one stage each, from the leaves up; each imports only those below it (import-linter
checks it: `lint-imports`, the contracts in pyproject.toml):

    core/       the schema, the defaults, the statistics, the cell record, the pairing rule, the machine
    measure/    the worker side: timing, checks, each task inside a worker, counting, roofs, `check`
    sweep/      the parent side of a run: presets, the plan and passes, executors, workers, the CSV
    analysis/   runs read back: summaries, comparisons and gates, counts, findings, history, floors
    render/     what a reader sees: the HTML report, plots, the catalogue (templates/ beside it)

On top: api (the Python API), cli (argparse over the API), and the tools run with `python -m`:
ci (the CI gates), reproduce (how well a run reproduces), validate (the timer against timeit).
"""
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["AbRun", "Check", "Comparison", "Results", "UsageError", "ab", "check", "compare", "report", "run"]

if TYPE_CHECKING:
    from bench.api import AbRun, Check, Comparison, Results, UsageError, ab, check, compare, report, run


def __getattr__(name: str):
    if name in __all__:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
