"""How much of the gate's tolerance each dtype's checks used, from a run with --dtypes float64,float32:
the margin behind bench.core.precision.GATE_ULPS (docs/precision.md).

    nablabench run --preset library --dtypes float64,float32 --passes 1 --max-passes 1 --rounds 1 \
        --max-rounds 1 --out /tmp/library.csv
    python scripts/precision_gate.py /tmp/library.csv

Per dtype: the variants checked, rel_err / rtol (how much of the gate analytic against autodiff used) and
precise_err / (eps_mach * max(condition, 1) * sqrt(dim)) (each variant's error against the higher precision,
in the units the gate counts), their maximum, 99th percentile and median, and the cells at the maximum.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import problems


def main(paths: list[str]) -> None:
    df = pd.concat([pd.read_csv(p) for p in paths])
    ok = df[(df["status"] == "ok") & (df["task"] == "eval")]
    ok = ok.drop_duplicates(["problem", "n", "backend", "dtype", "derivative", "mode", "variant"])
    bad = df[df["status"].isin(["wrong", "nan"])]
    print(f"wrong or nan rows: {len(bad)}")
    for dtype, rows in ok.groupby("dtype"):
        dim = np.array([problems.get(p).dim(int(n)) for p, n in zip(rows["problem"], rows["n"])])
        units = np.finfo(np.dtype(dtype)).eps * np.maximum(rows["condition"].fillna(1.0), 1.0) * np.sqrt(dim)
        used = rows["rel_err"] / rows["rtol"]
        error = rows["precise_err"] / units
        print(f"{dtype}: {len(rows)} variants checked; largest condition {rows['condition'].max():.3g}")
        for name, values in (("rel_err / rtol", used), ("precise_err / (eps cond sqrt(dim))", error)):
            print(f"  {name}: max {values.max():.3g}, 99th percentile {values.quantile(0.99):.3g}, "
                  f"median {values.median():.3g}")
            top = rows.loc[values.nlargest(3).index, ["problem", "n", "backend", "derivative", "variant"]]
            print("    at: " + "; ".join(" ".join(map(str, r)) for r in top.itertuples(index=False)))


if __name__ == "__main__":
    main(sys.argv[1:])
