"""The candidates that check a pick (SPEC §7): their rates, their results, how they rank.

Framework-free: the training itself is the engine's
(:func:`lrf.gluon.experiment.train_at_rate`); this module turns a suggestion into
candidate rates, and candidate results into a ranked table and a verdict. The
plan (rule, multipliers or rates, budget) is :class:`lrf.config.CandidatePlan`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Sequence

from lrf import _io
from lrf.config import CandidatePlan
from lrf.result import SweepResult
from lrf.rules import Suggestion, suggest

VERDICT_TOLERANCE = 0.05  # a pick within 5 % of the best candidate's loss is "confirmed within"


@dataclass(frozen=True)
class Selection:
    """The rule's suggestion and the rates to check it with (``candidates[0]`` is the pick
    when candidates come from multipliers; empty if there is no reliable suggestion)."""

    rule: str
    suggestion: Suggestion
    candidates: tuple[float, ...]
    multipliers: tuple[float, ...] | None

    @property
    def chosen_lr(self) -> float | None:
        return self.suggestion.lr

    def to_dict(self) -> dict:
        return {**asdict(self), "suggestion": self.suggestion.to_dict()}


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's training: every loss, the final one, and held-out figures.

    ``losses`` ends early (and ``final_loss`` and ``mean_last_k`` are NaN) if a loss
    was not finite: training stops there, since nothing finite follows in SGD.
    """

    lr: float
    iterations: int
    losses: tuple[float, ...]
    final_loss: float
    last_k: int
    mean_last_k: float
    holdout_loss: float | None
    holdout_accuracy: float | None
    seconds: float

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.final_loss)

    def to_json(self) -> str:
        return _io.to_json(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "CandidateResult":
        data = json.loads(text)
        data["losses"] = tuple(float(v) for v in data["losses"])
        data["final_loss"], data["mean_last_k"] = float(data["final_loss"]), float(data["mean_last_k"])
        return cls(**data)


def select(result: SweepResult, plan: CandidatePlan | None = None) -> Selection:
    """Apply the plan's rule and derive the candidate rates.

    Args:
        result: the sweep.
        plan: the rule and the multipliers or explicit rates (default
            :class:`CandidatePlan()`: the reference rule, pick x 1, 10, 0.1). With
            explicit rates the pick is still reported.
    """
    plan = plan or CandidatePlan()
    pick = suggest(result, plan.rule)
    if plan.candidate_rates is not None:
        return Selection(plan.rule, pick, plan.candidate_rates, None)
    candidates = tuple(pick.lr * m for m in plan.candidate_multipliers) if pick.ok else ()
    return Selection(plan.rule, pick, candidates, plan.candidate_multipliers)


def final_loss_table(selection: Selection, candidates: Sequence[CandidateResult]) -> list[dict]:
    """One row per candidate, ranked by the mean loss of the last k iterations (one batch
    is too noisy to rank by; diverged candidates last)."""
    order = sorted(candidates, key=lambda c: (not math.isfinite(c.mean_last_k), c.mean_last_k))
    rows = []
    for rank, c in enumerate(order, start=1):
        multiplier = c.lr / selection.chosen_lr if selection.chosen_lr else None
        rows.append({
            "rank": rank, "lr": c.lr, "multiplier": multiplier, "final_loss": c.final_loss,
            "mean_last_k": c.mean_last_k, "holdout_loss": c.holdout_loss, "holdout_accuracy": c.holdout_accuracy,
            "chosen": selection.chosen_lr is not None and math.isclose(c.lr, selection.chosen_lr, rel_tol=1e-12),
        })
    return rows


def verdict(rows: Sequence[dict], tolerance: float = VERDICT_TOLERANCE) -> str:
    """One sentence: did the candidate trainings confirm the pick?"""
    chosen = [r for r in rows if r["chosen"]]
    if not chosen:
        return "the pick was not among the candidates"
    best, mine = rows[0], chosen[0]
    if mine is best:
        return f"confirmed: the pick {mine['lr']:.3g} has the lowest loss of the candidates"
    if math.isfinite(mine["mean_last_k"]) and mine["mean_last_k"] <= best["mean_last_k"] * (1 + tolerance):
        return (f"confirmed within {tolerance:.0%}: the pick {mine['lr']:.3g} is {mine['mean_last_k']:.4g}, "
                f"the best ({best['lr']:.3g}) {best['mean_last_k']:.4g}")
    return (f"not confirmed: {best['lr']:.3g} ends lower ({best['mean_last_k']:.4g}) than the pick "
            f"{mine['lr']:.3g} ({mine['mean_last_k']:.4g})")
