"""The layout's rules, checked: no import cycle anywhere in bench/ (import-linter's contracts in
pyproject.toml check the layers between the stages; this checks within them too)."""
from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install nablabench[test])")


def test_bench_has_no_import_cycle():
    graph = grimp.build_graph("bench")
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == module or module.startswith(imported + ".") or imported.startswith(module + "."):
                continue  # a package and its own modules
            chain = graph.find_shortest_chain(importer=imported, imported=module, as_packages=False)
            if chain:
                cycles.add(" -> ".join(chain) + f" -> {imported}")
    assert not cycles, sorted(cycles)
