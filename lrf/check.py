"""Checking the pick (SPEC §7): candidate rates around it, and the final-loss table.

Framework-free: the training itself is the engine's (:mod:`lrf.gluon.candidates`);
this module turns a suggestion into candidates and candidate results into a
ranked table.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Sequence

from lrf import _io
from lrf._validate import one_of, positive_float, positive_int
from lrf.result import SweepResult
from lrf.rules import DEFAULT_RULE, RULES, Suggestion, suggest

REFERENCE_MULTIPLIERS = (1.0, 10.0, 0.1)  # the pick, ten times it, a tenth of it
TABLE_COLUMNS = ("rank", "lr", "multiplier", "final_loss", "mean_last_k", "holdout_loss", "holdout_accuracy", "chosen")


@dataclass(frozen=True)
class CheckPlan:
    """How to check the pick: the rule, the candidates, their budget, how many at once.

    Attributes:
        rule: suggestion rule name (the library default).
        candidate_multipliers: candidates = pick x each (1, 10, 0.1: SPEC §7).
        candidate_rates: explicit rates instead of multipliers (None).
        iterations: training iterations per candidate (500, SPEC §7).
        last_k: also rank by the mean loss of the last ``last_k`` iterations (20).
        parallel: candidates trained at the same time, each in its own process (3).
    """

    rule: str = DEFAULT_RULE
    candidate_multipliers: tuple[float, ...] | None = REFERENCE_MULTIPLIERS
    candidate_rates: tuple[float, ...] | None = None
    iterations: int = 500
    last_k: int = 20
    parallel: int = 3

    def __post_init__(self) -> None:
        one_of("rule", self.rule, RULES)
        if self.candidate_rates is not None:
            object.__setattr__(self, "candidate_rates", check_rates("candidate_rates", self.candidate_rates))
        else:
            multipliers = check_rates("candidate_multipliers", self.candidate_multipliers)
            object.__setattr__(self, "candidate_multipliers", multipliers)
        positive_int("iterations", self.iterations)
        positive_int("last_k", self.last_k)
        positive_int("parallel", self.parallel)


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
        return to_json(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "CandidateResult":
        data = json.loads(text)
        data["losses"] = tuple(float(v) for v in data["losses"])
        data["final_loss"], data["mean_last_k"] = float(data["final_loss"]), float(data["mean_last_k"])
        return cls(**data)


def check_rates(name: str, values: Sequence[float]) -> tuple[float, ...]:
    """Positive, finite, distinct numbers, at least one; errors name the parameter and value."""
    if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, got {name}={values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must name at least one rate, got {name}={list(values)!r}")
    rates = tuple(positive_float(name, v) for v in values)
    if len(set(rates)) != len(rates):
        raise ValueError(f"{name} must not repeat a value, got {name}={list(values)!r}")
    return rates


def select(
    result: SweepResult,
    rule: str = DEFAULT_RULE,
    multipliers: Sequence[float] | None = REFERENCE_MULTIPLIERS,
    rates: Sequence[float] | None = None,
) -> Selection:
    """Apply ``rule`` and derive the candidate rates.

    Args:
        result: the sweep.
        rule: suggestion rule name (default the library's default rule).
        multipliers: candidates = pick x each (default 1, 10, 0.1: SPEC §7).
        rates: explicit candidate rates instead of multipliers (the pick is still reported).

    Raises:
        ValueError/TypeError: unknown rule, empty/non-positive/duplicate multipliers or rates.
    """
    if rates is not None:
        return Selection(rule, suggest(result, rule), check_rates("candidate_rates", rates), None)
    multipliers = check_rates("candidate_multipliers", multipliers)
    pick = suggest(result, rule)
    candidates = tuple(pick.lr * m for m in multipliers) if pick.ok else ()
    return Selection(rule, pick, candidates, multipliers)


def final_loss_table(selection: Selection, candidates: Sequence) -> list[dict]:
    """One row per candidate (``CandidateResult``-like objects), ranked by the mean loss of
    the last k iterations (one batch is too noisy to rank by; diverged candidates last)."""
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


def verdict(rows: Sequence[dict], tolerance: float = 0.05) -> str:
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


def table_markdown(rows: Sequence[dict], k: int) -> str:
    """The final-loss table as GitHub Markdown."""
    header = f"| rank | lr | x pick | final loss | mean last {k} | held-out loss | held-out accuracy | |"
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|:--|"]
    for r in rows:
        cells = [
            str(r["rank"]), f"{r['lr']:.4g}", _fmt(r["multiplier"], "{:g}"), _fmt(r["final_loss"]),
            _fmt(r["mean_last_k"]), _fmt(r["holdout_loss"]), _fmt(r["holdout_accuracy"], "{:.2%}"),
            "**chosen**" if r["chosen"] else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(rows: Sequence[dict]) -> str:
    lines = [",".join(TABLE_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in TABLE_COLUMNS))
    return "\n".join(lines) + "\n"


def to_json(data) -> str:
    """Strict JSON with non-finite floats as strings (see :func:`lrf._io.json_float`)."""
    return json.dumps(_strict(data), indent=1, allow_nan=False) + "\n"


def _strict(value):
    if isinstance(value, float):
        return _io.json_float(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _fmt(value, pattern: str = "{:.4f}") -> str:
    if value is None:
        return "-"
    return "diverged" if isinstance(value, float) and math.isnan(value) else pattern.format(value)
