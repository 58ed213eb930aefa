"""Writes the README's pictures from real runs on this machine.

    python docs/images/make_images.py                      # all four (about 20 minutes)
    python docs/images/make_images.py latency decision     # some of them

Each picture is a figure labkit itself draws, from a run made here and now:

    latency.png   the latency figure of notebook 01: `labkit compare` (20 events/s for 20 s,
                  T = 1 s), then labkit.figures.latency_cdf on its events, with the model
    capacity.png  the figure `labkit capacity polling` (searching for the limit) writes into its results folder
    decision.png  the latency figure of the report `labkit decide` writes for
                  scenarios/requirements/payments-provider.toml, on a 3-minute budget
    audience.png  labkit.analysis.audience_figure over the audience sweep
                  (`labkit sweep scenarios/experiments/audience.toml`, about 13 minutes;
                  points already in results/readme-images/audience/ are reused)

The runs stay under results/readme-images/ (git-ignored), so each picture can be traced
to the summary.json, capacity.json or report.md it came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = REPO / "results" / "readme-images"


def labkit(*args: str) -> dict:
    """Run one labkit command with --json; its JSON document, or exit with its last lines of stderr."""
    proc = subprocess.run([sys.executable, "-m", "labkit", *args, "--json"], capture_output=True, text=True, cwd=REPO, timeout=1200)
    if proc.returncode != 0:
        sys.exit(f"labkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def latency() -> Path:
    import labkit as lk
    from labkit import figures

    doc = labkit("compare", "--rate", "20", "--duration", "20", "--poll-interval", "1", "--no-report", "--out", str(RUNS / "compare"))
    run = Path(doc["results_dir"])
    results = lk.load_results(run)
    rtt_ms = float(results.loc[results["style"] == "polling", "rtt_ms.mean"].iloc[0])
    fig = figures.latency_cdf(lk.load_events(run), poll_interval_s=1.0, rtt_ms=rtt_ms)
    out = HERE / "latency.png"
    fig.savefig(out, dpi=90, bbox_inches="tight", facecolor="white")
    return out


def capacity() -> Path:
    doc = labkit("capacity", "polling", "--out", str(RUNS))  # no --max-users: it searches for the limit
    out = HERE / "capacity.png"
    shutil.copyfile(Path(doc["results_dir"]) / "capacity.png", out)
    return out


def decision() -> Path:
    req = REPO / "scenarios" / "requirements" / "payments-provider.toml"
    doc = labkit("decide", str(req), "--max-minutes", "3", "--force", "--out", str(RUNS))
    out = HERE / "decision.png"
    shutil.copyfile(Path(doc["markdown"]).parent / "figures" / "latency_cdf.png", out)
    return out


def audience() -> Path:
    import labkit as lk
    from labkit.analysis.audience_figure import audience_figure

    doc = labkit("sweep", "scenarios/experiments/audience.toml", "--out", str(RUNS))  # resumable: done points stay
    fig = audience_figure(lk.load_results(Path(doc["results_dir"])))
    out = HERE / "audience.png"
    fig.savefig(out, dpi=90, bbox_inches="tight", facecolor="white")
    return out


PICTURES: dict[str, Callable[[], Path]] = {"latency": latency, "capacity": capacity, "decision": decision, "audience": audience}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in PICTURES]
    if unknown:
        sys.exit(f"no picture {unknown[0]!r}: choose from {', '.join(PICTURES)}")
    for name in names or list(PICTURES):
        print(f"{name}: {PICTURES[name]().relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
