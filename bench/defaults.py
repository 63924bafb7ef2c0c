"""Every default of a sweep and of a comparison, once: the CLI, presets, runner and cells import them."""

SAMPLES = 10  # eval: interleaved rounds per cell, one sample of every variant each
SAMPLE_TIME_S = 0.01  # eval: calls are looped until one sample lasts at least this
PASSES = 2  # the sweep runs over every cell this many times, each pass taking its share of the rounds
REPEATS = 3  # solve: gradient-descent runs per variant (the seed asks for 3 or more)
EPS = 1e-9  # solve: stop when f(x_k) - f* <= EPS
MAX_ITER = 10_000  # solve: give up after this many iterations (`not_converged`)
SEED = 0  # instance and round-order seed
RTOL = 1e-8  # analytic vs autodiff relative error above which a cell is `wrong` and not timed
EVAL_BUDGET_S = 120.0  # seconds an eval cell may take before its worker is stopped
SOLVE_BUDGET_S = 300.0  # ... a solve cell
MEMORY_FRACTION = 0.7  # skip a cell estimated to need more than this fraction of free memory

FACTOR = 1.2  # compare: the change in a median that counts as slower or faster (the CI gate: bench.ci)
ALPHA = 0.005  # compare: the level of each one-sided test (a 99% confidence)
