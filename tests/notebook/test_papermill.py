"""Papermill conventions: one ``parameters`` cell per notebook, and a ``-p`` override reaches the run.

The override test executes notebook 01 in quick mode through papermill, as
``papermill 01-push-vs-poll-latency.ipynb out.ipynb -p DURATION_S 2.5`` would,
and checks the value in the executed copy and in the summary of the run it made.
"""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

from labkit.notebook.runner import kernel_manager_class

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.py"))


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_notebook_has_one_parameters_cell_of_assignments_only(source: Path) -> None:
    nb = jupytext.read(source)
    cells = _tagged(nb, "parameters")
    assert len(cells) == 1, f"{source.name}: {len(cells)} cells tagged parameters"
    cell = cells[0]
    assert cell.cell_type == "code"
    assert "LABKIT_QUICK" in cell.source, "the parameter cell says how quick mode is set"
    code = [line for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assignments = [line for line in code if not line.startswith((" ", ")"))]
    # papermill injects its values after this cell: anything computed here from a parameter would miss the override
    assert assignments and all("=" in line.split("#")[0] for line in assignments), cell.source
    names = [line.split("=", 1)[0].strip() for line in assignments]
    assert all(name.isidentifier() and name.isupper() for name in names), names


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_papermill_override_reaches_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    monkeypatch.setenv("LABKIT_QUICK", "1")
    monkeypatch.setenv("LABKIT_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = NOTEBOOKS / "01-push-vs-poll-latency.py"
    ipynb = tmp_path / "01-push-vs-poll-latency.ipynb"
    nbformat.write(jupytext.read(source), ipynb)
    out = tmp_path / "01-executed.ipynb"
    papermill.execute_notebook(
        str(ipynb),
        str(out),
        parameters={"DURATION_S": 2.5},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(NOTEBOOKS),
        kernel_manager_class=kernel_manager_class(),  # re-polls: a lost wake-up after a widget cell hung nbclient
    )
    executed = nbformat.read(out, as_version=4)
    assert executed.metadata["papermill"]["parameters"] == {"DURATION_S": 2.5}
    (injected,) = _tagged(executed, "injected-parameters")
    assert "DURATION_S = 2.5" in injected.source
    shown = "".join(o.get("data", {}).get("text/plain", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "duration_s=2.5" in shown, "the settings the notebook displays carry the override"
    (summary,) = (results / "nb01-latency").rglob("summary.json")
    assert json.loads(summary.read_text())["workload"]["duration_s"] == 2.5  # quick mode alone would give 3.0
