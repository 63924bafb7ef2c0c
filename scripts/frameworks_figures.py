"""The frameworks preset's published figures (docs/changelog.md): logistic's paired ratios at n = 10, 1000, 10^4.

    python scripts/frameworks_figures.py results/frameworks-<stamp>.summary.csv
"""
import sys

import pandas as pd

s = pd.read_csv(sys.argv[1])
s = s[(s["task"] == "eval") & (s["problem"] == "logistic") & (s["mode"] == "autodiff")]
want = [("tensorflow", "grad", "tape"), ("tensorflow", "grad", "tape-xla"), ("torch-compile", "grad", "func"),
        ("jax", "grad", "jit"), ("torch", "grad", "backward"),
        ("tensorflow", "hvp", "fwd-rev"), ("tensorflow", "hvp", "fwd-rev-xla"), ("tensorflow", "hvp", "rev-rev-xla")]
for b, d, v in want:
    rows = s[(s.backend == b) & (s.derivative == d) & (s.variant == v)].sort_values("n")
    print(f"{b} {d} {v} (/ {rows['variant_analytic'].iloc[0] if len(rows) else '?'}): " + "; ".join(
        f"n={int(r.n)} {r.ratio:.3g}x [{r.ratio_lo:.3g}, {r.ratio_hi:.3g}]" for r in rows.itertuples()
        if r.n in (10, 1000, 10000)))
