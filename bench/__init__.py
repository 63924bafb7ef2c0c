"""nablabench: what automatic differentiation costs next to hand-derived derivatives.

The modules, from the leaves up:

    schema      the result key, variant key, family, row statuses, label(): imported by all below
    defaults    every default of a sweep and of a comparison
    timing      measuring callables: samples, calibration, interleaved rounds (measures only)
    intervals   the statistics: per-pass estimates, t-intervals over passes, the change between runs
    gd          gradient descent to f - f* <= eps, one loop for every backend
    cells       one part of a cell inside a worker: check, compile, warm, time
    workers     one subprocess per backend and device
    executors   where parts run: the executor seam, the local executor, one part on this machine
    cluster     the Dask executor (a peer of the local one)
    presets     named sweeps (jobs)
    runner      the sweep: plan, passes, the stopping rule, resume, the ETA; writes every row
    results     the CSV: columns, the sink, reading back; the metadata beside it
    summary     tables with intervals (NAME.summary.csv), paired ratios
    compare     verdicts between runs and the gate's structural failures; ci, the CI gate on top
    findings, plots, report, catalogue, history   what a reader sees
    cli         argparse -> validate -> the above
"""
__version__ = "0.1.0"
