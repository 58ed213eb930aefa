"""``labkit notebooks``: executed notebooks and their HTML exports, and bad input refused before any kernel starts."""

from __future__ import annotations

import json

import nbformat
import pytest

from tests.helpers.cli import labkit, labkit_process


def test_an_unknown_notebook_is_one_line_and_exit_2(tmp_path):
    proc = labkit("notebooks", "--only", "99", "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no notebook named 99" in lines[0], proc.stderr
    assert not (tmp_path / "notebooks").exists(), "nothing is written for a refused command"


def test_an_out_that_is_a_file_is_refused(tmp_path):
    existing = tmp_path / "file"
    existing.write_text("x", encoding="utf-8")
    proc = labkit("notebooks", "--quick", "--out", str(existing))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--out" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_writes_the_executed_notebook_and_its_html(tmp_path):
    proc = labkit_process("notebooks", "--quick", "--only", "05", "--out", str(tmp_path), "--json", timeout=850)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["quick"] is True
    (entry,) = doc["notebooks"]
    assert entry["name"] == "05-security" and entry["error"] is None
    folder = tmp_path / "notebooks" / "quick"
    assert entry["ipynb"] == str(folder / "05-security.ipynb")
    executed = nbformat.read(folder / "05-security.ipynb", as_version=4)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code" and c.source.strip())
    assert executed.metadata["papermill"]["exception"] is None
    html = (folder / "05-security.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "The price of HTTPS" in html and "TLS_REQUESTS" in html
    assert "WARNING | Kernel is running over TCP" not in proc.stderr
