"""The notebooks: thin (no function or class of their own), and executable top to bottom.

Each ``notebooks/NN-*.py`` (jupytext percent format, the reviewed source) is
converted to a notebook and executed headless with nbclient in quick mode
(``LABKIT_QUICK=1``), from ``notebooks/`` as JupyterLab would, its results in a
temporary folder (``LABKIT_RESULTS``) that all of them share, so notebook 06 reports
on what 01-03 measured. A cell that raises fails its test; each notebook must
show figures (PNG outputs, in cells or in widgets). The executed notebooks are
written to the test's tmp folder for a look.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import jupytext  # runtime dependencies of labkit: a missing one is a failure, not a skip
import nbclient
import nbformat
import pytest

from labkit.notebook.runner import kernel_manager_class

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.py"))
CELL_TIMEOUT_S = 600
CLOSING = "What this means for your choice"

# The least number of figures each notebook shows in quick mode.
MIN_FIGURES = {"01": 3, "02": 4, "03": 2, "04": 2, "05": 0, "06": 1, "07": 2}


def _id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook-results")


def test_the_seven_notebooks_are_there() -> None:
    assert [p.name[:2] for p in SOURCES] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("source", SOURCES, ids=_id)
def test_notebook_defines_no_function_or_class(source: Path) -> None:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found = [
        f"line {node.lineno}: {type(node).__name__}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
    ]
    assert not found, f"{source.name} defines code that belongs in labkit (labkit/notebook/): {found}"


@pytest.mark.parametrize("source", SOURCES, ids=_id)
def test_notebook_is_paired_and_ends_with_the_choice(source: Path) -> None:
    nb = jupytext.read(source)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert markdown and markdown[0].startswith("# "), "a notebook opens with a title"
    assert CLOSING in markdown[-1], f"the last cell is the '{CLOSING}' cell"


def _pngs(outputs: list[Any]) -> int:
    return sum(1 for o in outputs if "image/png" in o.get("data", {}))


def _figures(nb: Any) -> int:
    """PNG outputs in cells, and in Output widgets (interact and the explorers draw there)."""
    count = sum(_pngs(cell.get("outputs", [])) for cell in nb.cells if cell.cell_type == "code")
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():
        if model.get("model_name") == "OutputModel":
            count += _pngs(model.get("state", {}).get("outputs", []))
    return count


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("source", SOURCES, ids=_id)
def test_notebook_executes_in_quick_mode(source: Path, shared_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_QUICK", "1")
    monkeypatch.setenv("LABKIT_RESULTS", str(shared_results))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(source)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        kernel_manager_class=kernel_manager_class(),  # re-polls: a lost wake-up after a widget cell hung nbclient
    )
    started = time.monotonic()
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / f"{source.stem}.ipynb")
    elapsed = time.monotonic() - started
    print(f"{source.name}: executed in {elapsed:.0f} s")
    figures = _figures(nb)
    assert figures >= MIN_FIGURES[source.name[:2]], f"{source.name} showed {figures} figures"
