"""Keeping ``labkit decide --max-minutes M``: after each run, the runs left are planned again from the time really left.

``plan_decision`` sizes every run's publishing from this machine's overhead
model (``labkit.runs.overhead``) before anything runs. A model is a prediction:
a run may start slower than the runs it learnt from (another person's
measurement took the cores, a first use with TLS over a network profile), or
faster. ``Budget`` is the feedback step: it hears of each run as it ends,
records what the run really took beside what was planned (start-up and
wind-down, publishing, drain; one line, and a sample for the overhead model),
and plans the candidates not run yet from the time the command has really
spent, so an overrun shortens the later runs and a quick run lengthens them.
Only the last run's error reaches the command's length.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from labkit.report.requirements import Requirements
from labkit.results.layout import SUMMARY, read_summary
from labkit.runs import overhead
from labkit.runs.campaign import Log
from labkit.runs.decision_runs import AIM, DecisionPlan, DecisionPoint, MachineLimits, plan_decision
from labkit.runs.overhead import Overhead


def _quiet(*_: object) -> None:
    return None


def took(point: DecisionPoint, elapsed_s: float, actual: tuple[float, float, float]) -> str:
    """One line: what a run took beside what its plan predicted, part by part."""
    startup, publish, drain = actual
    p_startup, p_publish, p_drain = point.planned
    return (
        f"{point.label}: took {elapsed_s:.0f} s (start-up {startup:.1f} + publishing {publish:.1f} + drain {drain:.1f}), "
        f"planned {sum(point.planned):.0f} s ({p_startup:.1f} + {p_publish:.1f} + {p_drain:.1f})"
    )


@dataclass
class Budget:
    """The plan of a decision kept to its time budget: learns from each run, re-plans the rest.

    ``clock()`` is the seconds the command has taken so far (a test passes a fake
    one); ``save`` persists what the overhead model learnt (off in tests).
    """

    req: Requirements
    out: Path | str
    limits: MachineLimits
    seed: int
    clock: Callable[[], float]
    ov: Overhead
    plan: DecisionPlan
    log: Log = _quiet
    save: bool = True
    replans: list[str] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)  # each run's wall time: measured minus the model's prediction
    last: str = ""  # the line of the run that ended last
    initial_notes: tuple[str, ...] = field(init=False)  # the first plan's: the budget, the overhead each run was sized with
    first_points: tuple[DecisionPoint, ...] = field(init=False)  # the first plan's points (the predictions name their run ids)

    def __post_init__(self) -> None:
        self.initial_notes = self.plan.budget_notes
        self.first_points = self.plan.points

    def ran(self, point: DecisionPoint, folder: Path, elapsed_s: float) -> None:
        """A run ended: its parts beside the plan's (logged), and a sample for this machine's overhead model."""
        path = folder / SUMMARY
        if not path.exists():
            self.last = f"{point.label}: took {elapsed_s:.0f} s, planned {sum(point.planned):.0f} s"
            return
        summary = read_summary(path)
        actual = overhead.split(elapsed_s, summary)
        self.last = took(point, elapsed_s, actual)
        self.log(f"budget: {self.last}")
        key = overhead.key_of(point.label, point.settings)
        # the whole run against the model alone (the correction left out): what this command's runs teach every later one
        _, publish_s, drain_s = point.planned
        self.errors.append(elapsed_s - (self.ov.cost(key).startup_s(point.settings_consumers) + publish_s + drain_s))
        self.ov = overhead.observe(self.ov, key, point.settings_consumers, elapsed_s, summary)
        self.ov = replace(self.ov, bias_s=statistics.median(self.errors))
        if self.save:
            overhead.save(self.ov)

    def reported(self, seconds: float) -> None:
        """The report took ``seconds``: the next plan on this machine counts that."""
        self.ov = replace(self.ov, report_s=round(seconds, 1))
        if self.save:
            overhead.save(self.ov)

    def __call__(self, done: frozenset[str]) -> DecisionPlan:
        """The plan of the candidates not in ``done``, from the time really left (``run_decision``'s ``replan``)."""
        spent = self.clock()
        left = [p.label for p in self.plan.points if p.label not in done]
        aim = self.limits.minutes * 60 * AIM
        self.replans.append(
            f"re-planned after {self.last or 'a run already done'}: {spent:.0f} s spent of the {aim:.0f} s aimed at, "
            f"{len(left)} run(s) left ({', '.join(left)}) share the rest, each predicted "
            f"{self.ov.bias_s:+.0f} s off this machine's model (the runs so far)"
        )
        self.last = ""
        notes = (*self.initial_notes, *self.replans)
        self.plan = plan_decision(
            self.req, self.out, limits=self.limits, seed=self.seed, overhead=self.ov, spent_s=spent, done=done, notes=notes
        )
        self.log(f"budget: {self.replans[-1]}; predicted {self.plan.estimated_total_s:.0f} s in all")
        return self.plan
