"""The written report: self-contained HTML, a Markdown twin, every section, robust to failing parts."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from labkit.report import FACTORS, ReportPaths, write_report
from labkit.report.decide import FALLBACK
from tests.helpers.report import COMPARE_RUN, FIXTURES, REQUIREMENTS, SWEEP


class Resources(HTMLParser):
    """Every tag's attributes, and the text of <style> blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> Resources:
    p = Resources()
    p.feed(html)
    return p


@pytest.fixture
def report(tmp_path, fake_figures) -> ReportPaths:
    fake_figures()
    return write_report([COMPARE_RUN.parent, SWEEP], out_dir=tmp_path / "out", requirements=REQUIREMENTS / "payments-provider.toml")


@pytest.mark.slow  # a full report per test; every-section and self-contained stay fast
def test_writes_html_markdown_and_figures(report, tmp_path):
    assert report.html == tmp_path / "out" / "report.html" and report.html.is_file()
    assert report.markdown == tmp_path / "out" / "report.md" and report.markdown.is_file()
    pngs = sorted((tmp_path / "out" / "figures").glob("*.png"))
    assert len(pngs) == 7
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    # the same inputs as the payments golden: the report recommends what the golden decision does
    golden = json.loads((FIXTURES / "golden" / "payments-provider.json").read_text())
    assert report.recommendation is not None and report.recommendation.option == golden["option"]


def test_html_is_self_contained(report):
    html = report.html.read_text()
    res = parse(html)
    imgs = [a for t, a in res.tags if t == "img"]
    assert len(imgs) == 7
    for attrs in imgs:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    for tag, attrs in res.tags:
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if name not in attrs:
                continue
            value = attrs[name]
            assert not re.match(r"\s*(https?:)?//", value, re.I), (tag, name, value)
            if name == "href":
                assert value.startswith("#"), (tag, value)  # only in-page links
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
    css = "".join(res.styles)
    assert "@import" not in css and "url(" not in css
    assert "http://" not in html and "https://" not in html


@pytest.mark.slow  # a full report per test
def test_markdown_twin_has_the_same_content_and_local_figures(report):
    md = report.markdown.read_text()
    html = report.html.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 7
    for link in links:
        assert link.startswith("figures/") and (report.markdown.parent / link).is_file()
    for text in (FALLBACK, "Coverage gaps", "Risks of", "projection", "Appendix: reproduce"):
        assert text in md and text in html
    assert "http://" not in md and "https://" not in md


def test_report_has_every_section(report):
    html = report.html.read_text()
    for anchor in (
        "recommendation",
        "reasons",
        "options",
        "measurements",
        "figures",
        "projection",
        "risks",
        "factors",
        "gaps",
        "requirements",
        "appendix",
    ):
        assert f'id="{anchor}"' in html
    for factor in FACTORS:
        assert factor.capitalize() in html
    rec = report.recommendation
    assert rec is not None
    assert rec.sentence.split(":")[0] in html
    # reasons cite run ids and columns
    for reason in rec.reasons:
        for ev in reason.evidence:
            assert ev.run_id in html and ev.column in html
    # the table puts the model beside the measurement
    assert "model" in html and "latency p99" in html and "empty polls" in html
    # the projection is labelled as one, with its calibration
    assert "A projection, not a measurement" in html and "calibration" in html.lower()
    # the appendix: seeds, versions, machine, the exact commands
    assert "labkit compare --rate 20 --duration 10 --poll-interval 1 --payload-bytes 256 --seed 1" in html
    assert "labkit sweep scenarios/experiments/wasted-polls.toml" in html
    assert "Intel(R) Xeon(R) CPU @ 2.20GHz" in html and "3.11.7" in html
    assert "labkit report" in html and "payments-provider.toml" in html
    # risks say what fails, how it is detected and how to recover
    assert "How it is detected" in html and "dead letter" in html.lower()


@pytest.mark.slow
def test_figure_that_raises_or_is_missing_is_reported_not_fatal(tmp_path, fake_figures):
    fake_figures(missing=("cpu_vs_consumers",), failing=("latency_cdf",))
    paths = write_report([COMPARE_RUN], out_dir=tmp_path)
    html = paths.html.read_text()
    md = paths.markdown.read_text()
    assert "figure unavailable: ValueError: latency_cdf cannot draw this" in html
    assert (
        "figure unavailable: cannot import name &#39;cpu_vs_consumers&#39;" in html
        or "figure unavailable: cannot import name 'cpu_vs_consumers'" in html
    )
    assert "figure unavailable: ValueError: latency_cdf cannot draw this" in md
    assert len([t for t, _ in parse(html).tags if t == "img"]) == 5
    assert not (tmp_path / "figures" / "latency_cdf.png").exists()


def test_no_figures_module_at_all(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "labkit.analysis.figures", None)
    paths = write_report([COMPARE_RUN], out_dir=tmp_path)
    html = paths.html.read_text()
    assert html.count("figure unavailable:") == 8  # the seven of labkit.analysis.figures and the streams figure (no stream run here)
    assert "<img" not in html


@pytest.mark.slow
def test_projection_failure_says_why(tmp_path, fake_figures, monkeypatch):
    fake_figures()
    import labkit.analysis.calibration as calibration

    def broken(_df, **_kw):
        raise RuntimeError("nothing to fit")

    monkeypatch.setattr(calibration, "fit_costs", broken)
    html = write_report([COMPARE_RUN], out_dir=tmp_path).html.read_text()
    assert "The projection could not be computed: RuntimeError: nothing to fit" in html


@pytest.mark.slow
def test_default_profile_is_said(tmp_path, fake_figures):
    fake_figures()
    paths = write_report([COMPARE_RUN], out_dir=tmp_path)
    html = paths.html.read_text()
    assert "Default profile." in html and "No requirements file was given" in html
    assert "Default profile." in paths.markdown.read_text()


@pytest.mark.slow
def test_the_call_labkit_compare_makes(tmp_path, fake_figures):
    """cli.compare calls write_report([results_dir], out_dir=results_dir / "report")."""
    fake_figures()
    run = tmp_path / "20250301T120000000000Z-s1"
    shutil.copytree(COMPARE_RUN, run)
    paths = write_report([run], out_dir=run / "report")
    assert paths.html == run / "report" / "report.html" and paths.html.exists()
    assert (run / "report" / "report.md").exists()


def test_keys_and_secrets_never_appear(tmp_path, fake_figures):
    fake_figures()
    run = tmp_path / "run"
    shutil.copytree(COMPARE_RUN, run)
    summary = json.loads((run / "summary.json").read_text())
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    summary["settings"]["webhook_secret"] = secret
    summary["settings"]["api_key"] = "sk-live-do-not-print"
    summary["settings"]["notes"] = f"created with {secret} and Authorization: Bearer tok-123456"
    summary["environment"]["token"] = "ghp_abcdef123456"
    (run / "summary.json").write_text(json.dumps(summary))
    paths = write_report([run], out_dir=tmp_path / "out")
    for text in (paths.html.read_text(), paths.markdown.read_text()):
        for leaked in (secret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "sk-live-do-not-print", "tok-123456", "ghp_abcdef123456", "lab-key"):
            assert leaked not in text


@pytest.mark.slow  # two full reports
def test_a_sweep_alone_and_a_compare_run_alone(tmp_path, fake_figures):
    fake_figures()
    a = write_report([SWEEP], out_dir=tmp_path / "sweep")
    b = write_report([COMPARE_RUN / "summary.json"], out_dir=tmp_path / "compare")
    assert a.html.exists() and a.markdown.exists() and b.html.exists() and b.markdown.exists()
    assert "wasted-polls" in a.html.read_text()


@pytest.mark.slow  # a full report
def test_a_single_path_is_not_an_iterable_of_characters(tmp_path, fake_figures):
    fake_figures()
    assert write_report(str(COMPARE_RUN), out_dir=tmp_path).html.exists()


@pytest.mark.slow  # a full report of seven runs
def test_overlapping_paths_count_each_run_once(tmp_path, fake_figures):
    fake_figures()
    paths = write_report([FIXTURES, SWEEP, COMPARE_RUN], out_dir=tmp_path)
    # compare, three sweep points, the stream fixture and the two hybrid fixtures (plain, receiver dead)
    assert "from 7 runs" in paths.html.read_text()


@pytest.mark.slow  # renders every real figure in a fresh process
def test_cli_report_prints_paths_and_json(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit",
            "report",
            str(COMPARE_RUN),
            str(SWEEP),
            "--requirements",
            str(REQUIREMENTS / "internal-batch-sync.toml"),
            "-o",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"schema_version", "html", "markdown", "recommendation", "predictions"}
    assert data["predictions"] == []  # no predictions.json among these results
    assert data["schema_version"] == 1
    assert Path(data["html"]) == out / "report.html" and Path(data["html"]).exists()
    assert Path(data["markdown"]).exists()
    assert data["recommendation"]["option"] == "polling"
    run = tmp_path / "run"
    shutil.copytree(COMPARE_RUN, run)
    proc = subprocess.run([sys.executable, "-m", "labkit", "report", str(run)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"html:           {run / 'report' / 'report.html'}"
    assert lines[1] == f"markdown:       {run / 'report' / 'report.md'}"
    assert lines[2].startswith("recommendation: ")
