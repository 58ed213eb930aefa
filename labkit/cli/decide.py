"""``labkit decide REQUIREMENTS [--out DIR] [--json] [--max-minutes M] [--force]``: from requirements to a measured decision.

Plans the runs the decision needs (``labkit.runs.decision_runs``), runs those not
already under ``OUT/decide/<name>/`` with a progress bar, and writes the
report from those runs alone, so every reason cites a run made for these
requirements. A bad requirements file or option is one line and exit 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from labkit.cli.app import app
from labkit.cli.common import DEFAULT_OUT, echo_report, emit_json, json_option, out_option, progress_bar, report_json, writable_dir
from labkit.errors import ConfigError

if TYPE_CHECKING:
    from labkit.report import ReportPaths
    from labkit.runs.decision_runs import DecisionOutcome, DecisionPlan

DECIDE_SCHEMA_VERSION = 1


@app.command("decide")
def decide_command(
    requirements: Path = typer.Argument(
        ..., help="requirements TOML, e.g. scenarios/requirements/payments-provider.toml", show_default=False
    ),
    out: Path = out_option("results root; the runs and the report go to OUT/decide/<name>/", DEFAULT_OUT),
    max_minutes: float = typer.Option(13.0, "--max-minutes", help="time budget for all the runs together (minutes)"),
    force: bool = typer.Option(False, "--force", help="run every point again, even those already done"),
    seed: int = typer.Option(1, "--seed", help="seeds the arrivals and payloads"),
    max_polls_per_s: float = typer.Option(1000.0, "--max-polls-per-s", help="pollers are capped so that pollers / T stays under this"),
    max_deliveries_per_s: float = typer.Option(
        1000.0, "--max-deliveries-per-s", help="subscribers are capped so that subscribers x rate stays under this"
    ),
    as_json: bool = json_option("print only {schema_version, runs, html, markdown, recommendation, headlines} on stdout"),
) -> None:
    """Measure every candidate style at the requirement's operating point (scaled down where stated), then write the report."""
    if not 1.0 <= max_minutes <= 24 * 60:
        raise ConfigError(f"--max-minutes: must be between 1 and {24 * 60}, not {max_minutes:g}")
    for option, value in (("--max-polls-per-s", max_polls_per_s), ("--max-deliveries-per-s", max_deliveries_per_s)):
        if not 1.0 <= value <= 1_000_000:
            raise ConfigError(f"{option}: must be between 1 and 1,000,000, not {value:g}")
    started = time.monotonic()
    from dataclasses import replace

    from labkit.report import load_requirements, write_report
    from labkit.runs import overhead
    from labkit.runs.budget import Budget
    from labkit.runs.decision_runs import MachineLimits, plan_decision, run_decision

    req = load_requirements(requirements)  # refused before anything is created under --out
    limits = replace(MachineLimits(), minutes=max_minutes, max_polls_per_s=max_polls_per_s, max_deliveries_per_s=max_deliveries_per_s)
    ov = overhead.load()
    plan = plan_decision(req, out, limits=limits, seed=seed, overhead=ov)
    writable_dir(out, "--out")
    with progress_bar() as bar:
        _calibrate(bar.update)  # the model's calibration: measured once per machine, inside the budget
        # start-up, warm-up and drain of each candidate on this machine: probed once, then learnt from every run
        ov = overhead.probe(ov, [(p.label, p.settings) for p in plan.points], bar.log)
        plan = plan_decision(req, out, limits=limits, seed=seed, overhead=ov, spent_s=time.monotonic() - started)
        for style, why in plan.skipped_styles:
            bar.log(f"{style}: not a candidate ({why})")
        for note in plan.budget_notes:
            bar.log(f"budget: {note}")
        for p in plan.points:
            for note in p.scale_notes:
                bar.log(f"{p.label}: scaled down: {note}")
        predicted = _predict(plan, bar.update)  # before any run: the model's numbers for each candidate
        # after each run, the runs left are planned again from the time really left (and what that run taught)
        budget = Budget(req, out, limits, seed, lambda: time.monotonic() - started, ov, plan, bar.log)
        outcomes = run_decision(plan, force=force, progress=bar.update, log=bar.log, on_run=budget.ran, replan=budget)
    report_started = time.monotonic()
    paths = write_report([o.results_dir for o in outcomes], out_dir=plan.results_dir / "report", requirements=req)
    budget.reported(time.monotonic() - report_started)
    plan = replace(
        budget.plan,
        points=tuple(o.point for o in outcomes),
        budget_notes=tuple(dict.fromkeys(n for o in outcomes for n in o.point.budget_notes)),
    )
    # predicted before the first run: a re-planned run keeps its candidate's prediction (the run id changed with its publishing)
    first_ids = {p.label: p.run_id for p in budget.first_points}
    rows = _beside(predicted, outcomes, plan.results_dir / "report", first_ids)
    elapsed = time.monotonic() - started
    if as_json:
        doc = decision_json(requirements, plan, outcomes, paths, elapsed)
        emit_json({**doc, "predictions_file": str(predicted), "predictions": rows})
        return
    typer.echo(f"runs:           {plan.results_dir}")
    echo_report(paths)
    typer.echo(f"predictions:    {predicted} (model, written before the runs)")
    for r in rows:
        verdict = {True: "agrees", False: "DISAGREES", None: "-"}[r.get("agrees")]
        typer.echo(
            f"  {r['label']:<16} predicted {_ms(r['predicted_latency_mean_ms'])}, measured {_ms(r['measured_latency_mean_ms'])}: {verdict}"
        )
    typer.echo(f"took:           {elapsed / 60:.1f} min")


def _calibrate(progress: Any) -> None:
    import asyncio

    from labkit.lab.calibrate import calibration_for_run

    asyncio.run(calibration_for_run(progress))


def _predict(plan: DecisionPlan, progress: Any) -> Path:
    """Write each candidate's predicted numbers (the model on this machine's calibration) before the runs."""
    import asyncio

    from labkit.lab.calibrate import calibration_for_run
    from labkit.runs.predictions import Candidate, write_predictions

    calibration = asyncio.run(calibration_for_run(progress))
    candidates = [Candidate(p.label, p.run_id, p.style, p.settings) for p in plan.points]
    return write_predictions(plan.results_dir, candidates, calibration)


def _beside(predicted: Path, outcomes: list[DecisionOutcome], report_dir: Path, first_ids: dict[str, str]) -> list[dict[str, Any]]:
    """Each prediction beside its run's measurement; also written as ``predictions.md`` next to the report."""
    import json

    from labkit.runs.predictions import beside, markdown

    summaries = {}
    for o in outcomes:
        path = o.results_dir / "summary.json"
        if path.exists():
            summaries[first_ids.get(o.point.label, o.point.run_id)] = json.loads(path.read_text())
    rows = beside(json.loads(predicted.read_text()), summaries)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "predictions.md").write_text(markdown(rows))
    return rows


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


def decision_json(
    requirements: Path, plan: DecisionPlan, outcomes: list[DecisionOutcome], paths: ReportPaths, elapsed: float
) -> dict[str, Any]:
    """What ``labkit decide --json`` prints: the runs (with their scale-down), the report and its labelled headlines."""
    return {
        "schema_version": DECIDE_SCHEMA_VERSION,
        "requirements": str(requirements),
        "results_dir": str(plan.results_dir),
        "elapsed_s": round(elapsed, 1),
        "runs": [
            {
                "style": o.point.style,
                "variant": o.point.label,
                "run_id": o.point.run_id,
                "results_dir": str(o.results_dir),
                "skipped": o.skipped,
                "consumers": o.point.settings_consumers,
                "consumers_wanted": o.point.consumers_wanted,
                "at_operating_point": o.point.at_operating_point,
                "scale_notes": list(o.point.scale_notes),
            }
            for o in outcomes
        ],
        "not_candidates": [{"style": s, "why": w} for s, w in plan.skipped_styles],
        # its own predictions (the runs' rows, beside the predictions file) are added where the command prints
        **{k: v for k, v in report_json(paths).items() if k != "predictions"},
        "headlines": [h.to_dict() for h in paths.headlines],
        # added: the time budget, the predicted length of the command and what the budget cut
        "max_minutes": plan.budget_minutes,
        "estimated_s": round(plan.estimated_total_s, 1),
        "budget_notes": list(plan.budget_notes),
    }
