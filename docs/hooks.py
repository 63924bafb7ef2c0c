"""MkDocs hook: the tables the code defines, generated from it at build time, never copied.

A page holds a marker; the build replaces it with a table built from the code. A marker that no page
holds, or a `<!-- nablabench: ... -->` marker this hook does not know, fails the build.

    <!-- nablabench: statuses -->   bench.core.schema.STATUSES, BLOCKING and FAILED
    <!-- nablabench: columns -->    bench.sweep.results.COLUMNS, ADDED_COLUMNS and SCHEMA_VERSION
    <!-- nablabench: presets -->    bench.sweep.presets.PRESETS, job by job
    <!-- nablabench: modules -->    every module of bench/ with the first sentence of its docstring
    <!-- nablabench: contracts -->  the import-linter contracts in pyproject.toml
    <!-- nablabench: example -->    the worked example of README.md (tests/test_extend.py runs it there)
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent

MARKER = re.compile(r"<!-- nablabench: ([a-z]+) -->")
_seen: set[str] = set()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bar would end the table cell


def _statuses() -> str:
    from bench.core.schema import BLOCKING, FAILED, STATUSES

    rows = [f"| `{s}` | {_cell(meaning)} | {'yes' if s in BLOCKING else ''} | {'yes' if s in FAILED else ''} |"
            for s, meaning in STATUSES.items()]
    return "\n".join(["| status | meaning | blocks the larger sizes (`BLOCKING`) | a failure, not a skip (`FAILED`) |",
                      "| --- | --- | --- | --- |", *rows])


def _columns() -> str:
    from bench.sweep.results import ADDED_COLUMNS, COLUMNS, SCHEMA_VERSION

    added = {column: version for version, columns in ADDED_COLUMNS.items() for column in columns}
    rows = [f"| `{c}` | `{dtype}` | {added.get(c, 1)} |" for c, dtype in COLUMNS.items()]
    return "\n".join([f"Schema version {SCHEMA_VERSION}, {len(COLUMNS)} columns, in this order:", "",
                      "| column | pandas dtype | since schema version |", "| --- | --- | --- |", *rows])


def _presets() -> str:
    from bench.sweep.presets import PRESETS

    def listed(items: tuple, many: int) -> str:
        return ", ".join(map(str, items)) if len(items) <= many else f"{items[0]} … {items[-1]} ({len(items)})"

    rows = [f"| `{name}` | {job.task} | {listed(job.problems, 4)} | {', '.join(job.derivatives)} | "
            f"{listed(job.sizes, 12)} | {job.rounds if job.task == 'eval' else ''} | {job.passes}–{job.max_passes} | "
            f"{job.repeats if job.task == 'solve' else ''} |" for name, jobs in PRESETS.items() for job in jobs]
    return "\n".join(["| preset | task | problems | derivatives (eval) or solvers (solve) | sizes n | rounds (eval) | "
                      "passes | runs (solve) |", "| --- | --- | --- | --- | --- | --- | --- | --- |", *rows])


def _first_sentence(path: Path) -> str:
    text = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(text.split("\n\n")[0].split())
    return _cell(paragraph.split(". ")[0].rstrip(".") + ".") if paragraph else ""


def _modules() -> str:
    bench = ROOT / "bench"
    lines = []
    for folder in [bench, *sorted(p for p in bench.iterdir() if (p / "__init__.py").is_file())]:
        name = "bench" if folder == bench else f"bench.{folder.name}"
        lines += ["", f"**`{name}`**: {_first_sentence(folder / '__init__.py')}", "",
                  "| module | what it is for |", "| --- | --- |"]
        lines += [f"| `{name}.{p.stem}` | {_first_sentence(p)} |" for p in sorted(folder.glob("*.py"))
                  if not p.name.startswith("_")]
    return "\n".join(lines).strip()


def _contracts() -> str:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lines = []
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers":
            detail = ", above ".join(f"`{layer}`" for layer in contract["layers"])
        elif contract["type"] == "forbidden":
            detail = (", ".join(f"`{m}`" for m in contract["source_modules"]) + " import none of "
                      + ", ".join(f"`{m}`" for m in contract["forbidden_modules"]))
        else:
            detail = f"a `{contract['type']}` contract"
        lines.append(f"- **{contract['name']}** ({contract['type']}): {detail}.")
    return "\n".join(lines)


def _example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: my_network.py -->\s*(```python\n.*?```)", text, re.S)
    if not match:
        raise PluginError("docs/hooks.py: README.md lost its worked example (<!-- example: my_network.py -->).")
    return match.group(1)


TABLES = {"statuses": _statuses, "columns": _columns, "presets": _presets, "modules": _modules,
          "contracts": _contracts, "example": _example}


def on_config(config):
    # bench, problems and backends from this checkout, installed or not (MkDocs restores sys.path
    # after loading a hook, so this cannot happen at import)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_pre_build(config) -> None:
    _seen.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise PluginError(f"{page.file.src_uri}: unknown marker `{match.group(0)}`; expected one of: "
                              f"{', '.join(TABLES)}.")
        _seen.add(name)
        return TABLES[name]()

    return MARKER.sub(replace, markdown)


def on_env(env, config, files):
    # after every page's Markdown, before any page is written
    missing = [name for name in TABLES if name not in _seen]
    if missing:
        raise PluginError(f"No page holds the marker(s) {', '.join(f'<!-- nablabench: {m} -->' for m in missing)}: "
                          "the tables they generate are gone from the docs.")
    return env
