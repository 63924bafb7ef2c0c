"""The example notebook, executed for real on a Jupyter kernel (nbclient, ipykernel): no cell may
raise, and its outputs must hold the check's verdict and the run's findings."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nablabench[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nablabench[test])")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install nablabench[test])")

from test_extend import readme_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "two_layer_network.ipynb"
pytestmark = pytest.mark.slow


def _html(cell) -> str:
    return "".join(output.get("data", {}).get("text/html", "") for output in cell.get("outputs", []))


def test_the_notebook_defines_the_readmes_example_in_a_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert notebook.cells[1].source.strip() == readme_example().strip()  # one derivation, shown twice
    assert not any(cell.get("outputs") for cell in notebook.cells), "generated outputs are not committed"


def test_the_example_notebook_runs_headless_and_shows_its_findings(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell raises
    checked, results = (_html(cell) for cell in notebook.cells
                       if cell.cell_type == "code" and ("bench.check(" in cell.source or "bench.run(" in cell.source))
    assert "every derivative agrees" in checked
    assert "<strong>Findings</strong>" in results and re.search(r"<li>[^<]*torch", results), results[:2000]
    assert '<img src="data:image/png;base64,' in results
    assert list((tmp_path / "results").glob("run-*.csv")), "the run wrote no CSV where the notebook runs"
