"""The report's problem catalogue: each problem's formula as SVG (matplotlib mathtext, offline),
its seed reference, tags, and its family's derivation text (the module docstring)."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

from matplotlib import mathtext

import problems


def _formula_svg(formula: str, path: Path) -> str | None:
    """The formula as an SVG file's name; None where there is none, or mathtext cannot set it (a
    user's LaTeX beyond mathtext's subset): the catalogue then shows the text."""
    if not formula:
        return None
    try:
        mathtext.math_to_image(f"${formula}$", path, format="svg")
    except ValueError:
        return None
    return path.name


def build_catalogue(folder: Path, figures: set[str]) -> list[dict]:
    """One entry per problem family (module), each with its problems; SVGs written to folder."""
    families: dict[str, dict] = {}
    for name in problems.names():
        p = problems.get(name)
        module = inspect.getmodule(p.f)
        family = families.setdefault(module.__name__, {
            "module": module.__name__, "derivation": inspect.cleandoc(module.__doc__ or ""), "problems": []})
        svg = _formula_svg(p.formula, folder / f"formula_{name}.svg")
        family["problems"].append({
            "name": name, "svg": svg, "formula": p.formula, "source": problems.origin(name), "seed_ref": p.seed_ref,
            "tags": ", ".join(sorted(p.tags)),
            "variables": "n x n matrix (n^2 variables)" if p.dim(3) == 9 else
                         f"{p.dim(3)} (at n=3)" if p.dim(3) != 3 else "n",
            "solve": p.instance(3).f_star is not None and math.isfinite(p.instance(3).lipschitz),
            "derivatives": ", ".join(p.derivatives[1:]),
            "size_name": p.size_name,
            "figures": [f for f in (f"per_call_{name}_cpu.png", f"ratio_{name}_cpu.png",
                                    f"headline_{name}_cpu.png") if f in figures],
            "limits": ", ".join(f"{k} {p.size_name}<={v}" for k, v in p.size_limits.items()),
        })
    return sorted(families.values(), key=lambda f: f["module"])
