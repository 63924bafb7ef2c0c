"""The page of an A/B run (bench.api.ab): what changed first, then every variant's NEW / BASE."""
from __future__ import annotations

import math
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from bench.core.formatting import ratio_interval, seconds

ORDER = {"slower": 0, "faster": 1, "inconclusive": 2, "same": 3}


def build_ab_report(result, out: Path) -> Path:
    """out/index.html of an A/B run (a bench.api.AbRun); returns its path."""
    counted = result.measure != "time"
    rows = []
    for v in sorted(result.verdicts, key=lambda v: (ORDER[v.status], -abs(math.log(v.estimate)))):
        rows.append(dict(status=v.status, variant=v.variant, passes=v.passes,
                         change=f"{v.estimate:.4f}×" if counted else ratio_interval(v.estimate, v.lo, v.hi),
                         base=f"{v.base:,.0f}" if counted else seconds(v.base),
                         new=f"{v.new:,.0f}" if counted else seconds(v.new)))
    counts = {s: sum(v.status == s for v in result.verdicts) for s in ORDER}
    method = (f"Instructions per call (the median of each side's samples); slower beyond {result.factor:g}×."
              if counted else
              f"Each pass times both sides of a cell one after the other; NEW / BASE is the mean of the passes' "
              f"paired log ratios with its {1 - result.alpha:.0%} t-interval; slower where the change is "
              f"{result.factor:g}× or more and survives Benjamini-Hochberg at {result.alpha:g} across the variants.")
    out.mkdir(parents=True, exist_ok=True)
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape())
    versions = [(worker, ", ".join(f"{lib} {a} → {b}" for lib, (a, b) in moved.items()))
                for worker, moved in sorted(result.versions.items())]
    html = env.get_template("ab.html.j2").render(
        verdict="passed" if result.passed else "FAILED", sides=[s.describe() for s in result.sides],
        versions=versions,
        summary=(f"{counts['slower']} slower, {counts['faster']} faster, {counts['same']} same, "
                 f"{counts['inconclusive']} inconclusive; {len(result.failures)} failure(s)."),
        failures=result.failures, method=method, rows=rows, source=Path(result.path).name,
        verdicts_csv=Path(result.path).with_suffix(".ab.csv").name)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
