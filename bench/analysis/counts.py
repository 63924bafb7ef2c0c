"""Counted runs read back (`--measure instructions`): a variant's instructions per call, autodiff's
over its analytic twin's, two runs compared (the CI gate, bench.ci; `nablabench history`), and a
counted run's HTML report.

A variant's count is the mean of the lower half of its samples' instructions per call (`count_of`).
Two counted runs of one machine class and the same library versions give the same counts within a
fraction of a percent (measured: docs/counts.md), so a count that grew by more than COUNT_FACTOR is more
work, not noise. Counts of another CPU, or of other versions of a backend's libraries, differ for
reasons of their own (OpenBLAS picks its kernels by CPU; a release changes the code): the first
is not compared, the second is reported as a version change, with the cells it moved.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import backends

from bench.core.pairing import twin
from bench.core.schema import FAILED, KEY, OK, VARIANT_KEY, label
from bench.sweep.results import read_metadata, read_results

# Measured on this 2-CPU machine class: the counted ci cells of two fresh runs agreed within 0.9%
# in every variant (JAX's the most; numpy, autograd and torch within 0.3%), and the variants' own
# samples within 1.1% of their median, so a median 2% above its baseline is more work: a planted
# 3% in one variant is caught (scripts/count_gate_rates.py).
COUNT_FACTOR = 1.02
# What a backend's counts depend on besides its record's packages.
SHARED_PACKAGES = ("python", "numpy")


def count_of(samples) -> float:
    """A variant's count from its samples' instructions per call: the mean of their lower half (the 3
    lowest of 5). What moves a count between processes of identical code comes mostly one way, up: a
    process whose torch code fell, part way through its samples, into a path 1% longer (docs/counts.md).
    The lower half leaves such samples out while fewer than half of them are, and averages the small
    moves either way (JAX's samples spread 0.4% about their median): over 20 A/A runs of the count
    gate's cells (380 unchanged variants) it moved an unchanged variant by at most 0.66%, where the
    median moved two of them by over 1% (up to 1.48%, torch's, docs/counts.md)."""
    ordered = sorted(float(s) for s in samples)
    lower = ordered[:(len(ordered) + 1) // 2]
    return sum(lower) / len(lower)


def counted(path: str | Path) -> bool:
    """Whether a results CSV holds instruction counts (a run of --measure instructions or cycles)."""
    path = Path(path)
    if path.suffix != ".csv" or not path.exists():
        return False
    header = path.open().readline().rstrip("\n").split(",")
    if "instructions" not in header:
        return False
    return bool(read_results([path])["instructions"].notna().any())


def count_table(path: str | Path) -> pd.DataFrame:
    """One row per counted variant: its instructions (and cycle estimate) per call (`count_of`), its
    samples, and their spread, (max - min) / that count."""
    df = read_results([Path(path)])
    ok = df[(df["status"] == OK) & df["instructions"].notna()]
    if ok.empty:
        raise ValueError(f"{path} holds no instruction counts (a run of `nablabench run --measure instructions`)")
    g = ok.groupby(list(VARIANT_KEY), observed=True, dropna=False)
    table = g.agg(instructions=("instructions", count_of), est_cycles=("est_cycles", count_of),
                  samples=("instructions", "size"), low=("instructions", "min"), high=("instructions", "max"))
    table["spread"] = (table["high"] - table["low"]) / table["instructions"]
    return table.drop(columns=["low", "high"]).reset_index()


def count_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per autodiff variant of a count table: its instructions per call over those of its analytic
    twin (bench.core.pairing.twin, the pairing of the timed ratio): what autodiff costs in work."""
    key = list(KEY)
    analytic = {k: g.set_index("variant")["instructions"].to_dict()
                for k, g in table[table["mode"] == "analytic"].groupby(key, observed=True)}
    rows = []
    for row in table[table["mode"] == "autodiff"].to_dict("records"):
        medians = analytic.get(tuple(row[c] for c in key), {})
        pair = twin(str(row["backend"]), row["variant"])
        if pair in medians:
            rows.append(dict(row, variant_analytic=pair, instructions_analytic=medians[pair],
                             ratio=row["instructions"] / medians[pair]))
    return pd.DataFrame(rows, columns=list(table.columns) + ["variant_analytic", "instructions_analytic", "ratio"])


def build_count_report(path: str | Path, out: str | Path) -> Path:
    """out/index.html of one counted run: per backend and derivative the range of autodiff's
    instructions over the hand-derived, then every variant's count, and every variant not counted."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from bench.measure.callgrind import CYCLES_FORMULA

    path, out = Path(path), Path(out)
    table = count_table(path)
    ratios = count_ratios(table)
    findings = [dict(backend=b, derivative=d, low=g["ratio"].min(), high=g["ratio"].max(), cells=len(g),
                     lowest=label(g.loc[g["ratio"].idxmin()]), highest=label(g.loc[g["ratio"].idxmax()]))
                for (b, d), g in ratios.groupby(["backend", "derivative"], observed=True)]
    rows = table.merge(ratios[list(VARIANT_KEY) + ["variant_analytic", "ratio"]], on=list(VARIANT_KEY), how="left")
    df = read_results([path])
    failed = df[df["status"].isin(FAILED) | (df["status"] == "skipped")].drop_duplicates(list(VARIANT_KEY))
    meta = next(iter(read_metadata([path]).values()), {})
    packages = sorted({p for b in table["backend"].unique() if b in backends.names() for p in backends.get(b).packages})
    versions = {p: meta.get("versions", {}).get(p) for p in SHARED_PACKAGES + tuple(packages)}
    out.mkdir(parents=True, exist_ok=True)
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape())
    html = env.get_template("counts.html.j2").render(
        source=path.name, machine=meta.get("machine", "?"), commit=str(meta.get("git_commit") or "?")[:10],
        versions=versions, findings=findings, cycles=bool(table["est_cycles"].notna().any()),
        cycles_formula=CYCLES_FORMULA,
        rows=[dict(r, label=label(r)) for r in rows.astype(object).where(rows.notna(), None).to_dict("records")],
        failed=[dict(variant=label(r), status=r["status"], message=r["message"]) for r in
                failed.astype(object).fillna("").to_dict("records")])
    index = out / "index.html"
    index.write_text(html)
    return index


def versions_of(path: str | Path) -> dict[str, str | None]:
    """The library versions a run recorded (the first of its metadata blocks)."""
    meta = read_metadata([Path(path)])
    return next(iter(meta.values()), {}).get("versions", {}) if meta else {}


def changed_packages(base: dict, new: dict, backend: str) -> list[str]:
    """'torch 2.13.0 -> 2.14.0' for each package of `backend` (and SHARED_PACKAGES) whose version differs."""
    record = backends.get(backend).packages if backend in backends.names() else ()
    names = dict.fromkeys(SHARED_PACKAGES + tuple(record))
    return [f"{p} {base.get(p)} -> {new.get(p)}" for p in names if base.get(p) != new.get(p)]


@dataclass(frozen=True)
class CountVerdict:
    variant: str  # bench.core.schema.label of the variant
    backend: str
    base: float  # instructions per call
    new: float
    status: str  # slower | faster | same
    versions: str = ""  # the backend's packages whose versions changed: said beside the verdict, never a pass

    @property
    def ratio(self) -> float:
        return self.new / self.base


def compare_counts(base_path: str | Path, new_path: str | Path, factor: float = COUNT_FACTOR) -> list[CountVerdict]:
    """Every variant counted in both runs, NEW against BASE: slower or faster beyond `factor`, or
    the same; where a version of the backend's libraries changed, the verdict names it (`versions`).
    A version change is what moved the count, or beside it: either way the count moved, and a gate
    that passed on it would be silenced by any unpinned release."""
    base, new = count_table(base_path), count_table(new_path)
    base_versions, new_versions = versions_of(base_path), versions_of(new_path)
    both = base.merge(new, on=list(VARIANT_KEY), suffixes=("_base", "_new"))
    verdicts = []
    for row in both.astype(object).to_dict("records"):
        ratio = row["instructions_new"] / row["instructions_base"]
        changed = changed_packages(base_versions, new_versions, row["backend"])
        status = ("slower" if ratio > factor else "faster" if ratio < 1 / factor else "same")
        verdicts.append(CountVerdict(label(row), row["backend"], row["instructions_base"], row["instructions_new"],
                                     status, "; ".join(changed)))
    return verdicts


def format_counts(verdicts: list[CountVerdict], *, factor: float, limit: int = 40) -> str:
    """The comparison as text: the variants that moved first, each with its counts and ratio."""
    order = {"slower": 0, "faster": 1, "same": 2}
    shown = sorted(verdicts, key=lambda v: (order[v.status], -abs(v.ratio - 1)))
    lines = [f"instruction counts per call, new vs base, at {factor:g}x ({len(verdicts)} variants; "
             f"{sum(v.status == 'same' for v in verdicts)} within the factor):"]
    for v in shown[:limit]:
        extra = f" [{v.versions}]" if v.versions else ""
        lines.append(f"  {v.status:>8}  {v.ratio:7.4f}x  {v.base:14,.0f} -> {v.new:14,.0f}  {v.variant}{extra}")
    if len(shown) > limit:
        lines.append(f"  ... {len(shown) - limit} more within the factor")
    return "\n".join(lines)
