"""Every default of a sweep and of a comparison, once: the CLI, presets, runner and cells import them."""

# Sampling (bench.core.intervals says why passes, not rounds, buy certainty here). A cell is run in parts,
# one per pass over the sweep: at least PASSES, and more, up to MAX_PASSES, as many as its first pass's
# spread says it needs for an interval within +-TARGET (bench.core.stopping). A part takes at least ROUNDS
# interleaved rounds (one sample of every variant each), more (up to MAX_ROUNDS) while a variant's
# within-pass standard error exceeds TARGET.
PASSES = 2
MAX_PASSES = 6
ROUNDS = 2
MAX_ROUNDS = 10
TARGET = 0.03  # the 95% interval's half-width a cell's planned passes aim at: +-3% (bench.core.stopping)
# The drift between passes beyond what a pass's own rounds show (log scale): the prior with which a cell's
# passes are planned from its first (bench.core.stopping). It sets how many passes a cell takes, not its
# interval. Measured (frameworks preset, 2026-12-05, 156 ratio series of 3+ passes): median 0, 75th
# percentile 1.4%, 90th 3.0%; the rounds' own standard error had a median of 1.7%.
PASS_SD = 0.01
# ... and the budget: rounds beyond a part's floor only while its rounds so far took less than this many
# seconds, passes beyond a cell's floor only while its parts so far took less than this each on average
# (a dense autodiff Hessian at n = 1000 takes seconds a call: its floor is what it gets)
CHEAP_S = 0.25
SAMPLE_TIME_S = 0.005  # eval: calls are looped until one sample lasts at least this
REPEATS = 3  # solve: gradient-descent runs of each variant over the first PASSES passes, at least (the seed: 3 or more)
EPS = 1e-9  # solve: stop when f(x_k) - f* <= EPS
MAX_ITER = 10_000  # solve: give up after this many iterations (`not_converged`)
SEED = 0  # instance and round-order seed
RTOL = 1e-8  # analytic vs autodiff relative error above which a cell is `wrong` and not timed
EVAL_BUDGET_S = 120.0  # seconds an eval cell may take before its worker is stopped
SOLVE_BUDGET_S = 300.0  # ... a solve cell
MEMORY_FRACTION = 0.7  # skip a cell estimated to need more than this fraction of free memory
MAX_N = 10**9  # the largest size a run takes (a float64 vector of it is 8 GB); the memory guard decides below it

# What a sweep measures: wall time; or, for eval cells on the CPU, work counted under valgrind's
# callgrind (bench.measure.counting): instructions per call, or those and the cache simulation's cycle estimate
MEASURES = ("time", "instructions", "cycles")

FACTOR = 1.2  # compare: the change that counts as slower or faster (the CI gate's own: bench.ci)
ALPHA = 0.05  # compare: 1 - the intervals' level (95%), and the false discovery rate across a comparison's cells

# An A/B run (bench.api.ab): both sides of every cell timed in each of AB_PASSES passes, one after the
# other, and NEW / BASE read per variant from the passes' paired ratios. `slower` at AB_FACTOR (times)
# or AB_COUNT_FACTOR (instructions per call), the false discovery rate across variants ALPHA.
AB_PASSES = 10
AB_FACTOR = 1.05
AB_COUNT_FACTOR = 1.01  # over 20 A/A runs, no unchanged variant moved by more than 0.66% (docs/counts.md)
