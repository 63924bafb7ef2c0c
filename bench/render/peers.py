"""What the field's own benchmarks published for the same workloads, as context for the report.

GradBench's nightly results: github.com/gradbench/gradbench, branch ci/refs/heads/nightly, commit
c8a22ed2 ("Nightly stats on 2026-03-14 for commit f26651a7"), evals/{llsq,lse,gmm,kmeans}/
summary.json. Each number is a tool's mean derivative time over the `manual` tool's for the same
input: C++ with OpenMP, on GitHub Actions ubuntu-24.04 runners. Its denominator is a hand-written
C++ derivative, not the same framework's hand-written formula as here, so these ratios and
nablabench's measure different things; they are set side by side as context, not as a check.
"""

SOURCE = ("GradBench nightly summary.json, 2026-03-14 (gradbench/gradbench ci/refs/heads/nightly, commit c8a22ed2); "
          "tool's derivative time over the C++ manual tool's")

# workload -> (what GradBench times, {tool: (the cells on nablabench's size path, ratio), ...})
PUBLISHED: dict[str, tuple[str, dict[str, list[tuple[str, float]]]]] = {
    "llsq": ("gradient, m = 128, n = 16 ... 16392 points",
             {"jax": [("11 cells, min", 2.82), ("median", 3.26), ("max", 7.05)]}),
    "lse": ("gradient, n = 2500 ... 1280000",
            {"jax": [("10 cells, min", 1.01), ("median", 1.29), ("max", 2.73)],
             "pytorch": [("10 cells, min", 0.82), ("median", 1.24), ("max", 12.25)]}),
    "gmm": ("gradient (Jacobian of the objective), D = 10, N = 1000",
            {"jax": [("K=5", 1.48), ("K=10", 1.50), ("K=25", 1.32), ("K=50", 1.20), ("K=100", 0.97)],
             "pytorch": [("K=5", 1.64), ("K=10", 1.42), ("K=25", 1.54), ("K=50", 1.21), ("K=100", 0.98)]}),
    "kmeans": ("Newton direction `dir`, d = 8, N = 10^4",
               {"jax": [("k=10", 1.00), ("k=100", 1.27), ("k=1000", 0.73)],
                "pytorch": [("k=10", 3.01), ("k=100", 3.20), ("k=1000", 3.62)]}),
}
