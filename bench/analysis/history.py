"""Metrics over commits (median times; instruction counts of counted runs): a page of small
multiples and github-action-benchmark's JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure  # no pyplot: no global backend (bench.render.plots)

from bench.analysis.compare import load_samples
from bench.analysis.counts import count_table
from bench.core.schema import VARIANT_KEY, label
from bench.sweep.results import read_metadata, read_results

# the versions a run's label shows: what moves the counts and times of a backend across releases
TRACKED_PACKAGES = ("numpy", "torch", "jax", "jaxlib", "autograd", "tensorflow")


def _run_identity(path: Path) -> dict:
    """Commit and time of one run, from the CSV's metadata or the pytest-benchmark JSON."""
    if path.suffix == ".json":
        report = json.loads(path.read_text())
        return {"commit": (report.get("commit_info") or {}).get("id"), "time": report.get("datetime", ""),
                "versions": ""}
    meta = read_metadata([path])
    first = min(meta.values(), key=lambda m: m.get("started", "")) if meta else {}
    versions = first.get("versions") or {}
    tracked = [p for p in TRACKED_PACKAGES if versions.get(p)]
    return {"commit": first.get("git_commit"), "time": first.get("started", ""),
            "versions": ", ".join(f"{p} {versions[p]}" for p in tracked)}


# what a run's cells are tracked by: wall time, or (a counted run, --measure instructions) work
METRICS = {"time_s": ("s", "median time [s]"), "instructions": ("instructions", "instructions per call (median)")}


def _medians(path: Path) -> pd.DataFrame:
    """A run's cells with the metric each is tracked by: instruction counts where it counted them,
    else the median time."""
    if path.suffix == ".csv":
        frame = read_results([path])
        if frame["instructions"].notna().any():
            counts = count_table(path)[[*VARIANT_KEY, "instructions"]]
            return counts.rename(columns={"instructions": "value"}).assign(metric="instructions")
    medians = load_samples(path).groupby(list(VARIANT_KEY), observed=True, dropna=False)["time_s"].median()
    return medians.rename("value").reset_index().assign(metric="time_s")


def history_table(paths: list[Path]) -> pd.DataFrame:
    """One row per (run, cell): its metric (`metric`: time_s or instructions; `value`), with the
    run's commit, time and its backends' library versions (a change of version shows in `versions`)."""
    frames = []
    for path in paths:
        ident = _run_identity(path)
        frame = _medians(path)
        frame["commit"] = (ident["commit"] or "unknown")[:10]
        frame["run_time"] = ident["time"] or path.name
        frame["versions"] = ident["versions"]
        frame["source"] = str(path)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    order = table.drop_duplicates("source").sort_values("run_time")["source"].tolist()
    table["run"] = table["source"].map({s: i for i, s in enumerate(order)})
    return table.sort_values(["run"] + list(VARIANT_KEY)).reset_index(drop=True)


def action_benchmark_json(table: pd.DataFrame) -> list[dict]:
    """github-action-benchmark `customSmallerIsBetter` entries for the newest run."""
    newest = table[table["run"] == table["run"].max()]
    return [{"name": label(r), "unit": METRICS[r["metric"]][0], "value": float(r["value"]),
             "extra": f"commit {r['commit']}"} for r in newest.to_dict("records")]


def build_history(paths: list[Path], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    table = history_table(paths)
    runs = table.drop_duplicates("run").sort_values("run")
    labels = [f"{c}\n{t[:10]}" for c, t in zip(runs["commit"], runs["run_time"])]
    figures = []
    for (metric, task, problem, derivative), part in table.groupby(["metric", "task", "problem", "derivative"],
                                                                   observed=True):
        largest = part[part["n"] == part["n"].max()]
        fig = Figure(figsize=(7, 3.6))
        ax = fig.subplots()
        for (backend, mode, variant), line in largest.groupby(["backend", "mode", "variant"], observed=True):
            ax.plot(line["run"], line["value"], marker="o", markersize=3, label=f"{backend} {mode} ({variant})")
        ax.set_yscale("log")
        ax.set_xticks(range(len(labels)), labels, fontsize=6)
        ax.set_ylabel(METRICS[metric][1])
        ax.set_title(f"{task} · {problem} · {derivative} · n={int(largest['n'].max())}", fontsize=10)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6)
        suffix = "_instructions" if metric == "instructions" else ""
        name = f"history_{task}_{problem}_{derivative}{suffix}.png".replace("/", "_").replace(" ", "_")
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        figures.append(name)
    (out / "benchmark-data.json").write_text(json.dumps(action_benchmark_json(table), indent=1))
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape())
    wide = table.pivot_table(index=["metric", "task", "problem", "n", "backend", "mode", "derivative", "variant"],
                             columns="run", values="value").reset_index()
    wide["metric"] = wide["metric"].map(lambda m: METRICS[m][0])
    html = env.get_template("history.html.j2").render(
        runs=list(zip(runs["run"], runs["commit"], runs["run_time"], runs["versions"], runs["source"])),
        figures=figures,
        table=wide.to_html(index=False, classes="data", border=0, float_format=lambda v: f"{v:.4g}"))
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
