"""The candidates that check a pick (SPEC §7): their rates, their results, the recommendation.

Framework-free: the training itself is the engine's
(:func:`lrf.training.train_at_rate`); this module turns a suggestion into
candidate rates, and candidate results into a ranked table and a *recommended*
rate: the candidate that did best on a held-out measure, with the evidence in one
sentence. The plan (rule, multipliers or rates, budget) is
:class:`lrf.config.CandidatePlan`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence

from lrf import _io
from lrf.config import CandidatePlan
from lrf.result import SweepResult
from lrf.rules import Suggestion, suggest

# The measure that decides, in order of preference: the held-out loss where the data has a
# held-out split (what a user training at that rate cares about), else the mean training
# loss of the last k iterations (one batch is too noisy to decide on).
MEASURES = ("holdout_loss", "mean_last_k")
MEASURE_LABELS = {"holdout_loss": "held-out loss", "mean_last_k": "mean training loss of the last k iterations"}
# Candidates whose measures differ by less than this (relative) are tied: the lower rate is
# recommended, the safer of two equally good rates.
TIE_TOLERANCE = 0.005


@dataclass(frozen=True)
class Selection:
    """The rule's suggestion and the rates to check it with (``candidates[0]`` is the pick
    when candidates come from multipliers; empty if there is no reliable suggestion)."""

    rule: str
    pick: Suggestion  # the rule's pick (its rate, or why there is none)
    candidates: tuple[float, ...]
    multipliers: tuple[float, ...] | None
    picks: tuple[float | None, ...] = ()  # the rule's pick on each sweep (one per sweep)
    spread: float | None = None  # largest / smallest pick; None with fewer than two picks
    uncertain: bool = False  # spread above the plan's threshold: the candidates' range was widened

    @property
    def pick_lr(self) -> float | None:
        """The rule's pick (None if the rule found no reliable rate)."""
        return self.pick.lr

    def to_dict(self) -> dict:
        return {**asdict(self), "pick": self.pick.to_dict()}


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
    ran_on: str | None = None  # where it ran: worker and device (None: not recorded)

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.final_loss)

    def to_json(self) -> str:
        return _io.to_json(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "CandidateResult":
        """Read :meth:`to_json`'s text back, checking that it is a whole, consistent result (other
        keys are ignored: a cached result carries a header of its own).

        Raises:
            ValueError: not JSON, a field missing or of the wrong type, or numbers that
                contradict each other (no losses, more losses than iterations, a final loss
                that is not the last loss, a mean of the last k that is not theirs, ...).
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an lrf candidate result: expected a JSON object")
        missing = [f.name for f in fields(cls) if f.name not in data and f.name != "ran_on"]
        if missing:
            raise ValueError(f"lrf candidate result lacks {', '.join(missing)}")
        if not isinstance(data["losses"], list):
            raise ValueError(f"lrf candidate result has losses={data['losses']!r}, expected a list")
        values = {name: _float(name, data[name]) for name in ("lr", "final_loss", "mean_last_k", "seconds")}
        for name in ("holdout_loss", "holdout_accuracy"):
            values[name] = None if data[name] is None else _float(name, data[name])
        for name in ("iterations", "last_k"):
            if isinstance(data[name], bool) or not isinstance(data[name], int) or data[name] < 1:
                raise ValueError(f"lrf candidate result has {name}={data[name]!r}, expected an integer >= 1")
            values[name] = data[name]
        values["losses"] = tuple(_float(f"losses[{i}]", v) for i, v in enumerate(data["losses"]))
        ran_on = data.get("ran_on")
        if ran_on is not None and not isinstance(ran_on, str):
            raise ValueError(f"lrf candidate result has ran_on={ran_on!r}, expected text")
        values["ran_on"] = ran_on
        result = cls(**values)
        result._check()
        return result

    def _check(self) -> None:
        """Raise ValueError if the numbers contradict each other."""
        problem = None
        finite = [math.isfinite(v) for v in self.losses]
        if not (math.isfinite(self.lr) and self.lr > 0):
            problem = f"lr={self.lr!r} is not a positive rate"
        elif not self.losses:
            problem = "it has no losses"
        elif len(self.losses) > self.iterations:
            problem = f"it has {len(self.losses)} losses for iterations={self.iterations}"
        elif not all(finite[:-1]) or (len(self.losses) < self.iterations and finite[-1]):
            problem = "training goes on after a non-finite loss, or stops early without one"
        elif finite[-1] and self.final_loss != self.losses[-1]:
            problem = f"final_loss={self.final_loss!r} is not the last loss {self.losses[-1]!r}"
        elif finite[-1] and not math.isclose(self.mean_last_k, mean_of_last(self.losses, self.last_k),
                                             rel_tol=1e-9, abs_tol=1e-12):
            problem = f"mean_last_k={self.mean_last_k!r} is not the mean of the last {self.last_k} losses"
        elif not finite[-1] and not (math.isnan(self.final_loss) and math.isnan(self.mean_last_k)):
            problem = "a diverged training must have final_loss and mean_last_k NaN"
        elif self.holdout_accuracy is not None and not 0 <= self.holdout_accuracy <= 1:
            problem = f"holdout_accuracy={self.holdout_accuracy!r} is not in [0, 1]"
        if problem:
            raise ValueError(f"lrf candidate result is inconsistent: {problem}")


def mean_of_last(losses: Sequence[float], k: int) -> float:
    """The mean of the last ``k`` losses (of them all if fewer): what ``mean_last_k`` records;
    NaN if the last loss is not finite (a diverged training).

    >>> mean_of_last([3.0, 2.0, 1.0], 2)
    1.5
    """
    if not losses or not math.isfinite(losses[-1]):
        return math.nan
    tail = losses[-k:]
    return sum(tail) / len(tail)


def _float(name: str, value) -> float:
    """A number of a result file: a JSON number or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"lrf candidate result has {name}={value!r}, expected a number")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"lrf candidate result has {name}={value!r}, expected a number") from None


def select(results: SweepResult | Sequence[SweepResult], plan: CandidatePlan | None = None) -> Selection:
    """Apply the plan's rule to each sweep, take the median pick and derive the candidate rates.

    Args:
        results: the sweep, or several from the same weights on different batch orders.
        plan: the rule and the multipliers or explicit rates (default
            :class:`CandidatePlan()`: the reference rule, pick x 1, 10, 0.1). With
            explicit rates the pick is still reported.

    With several sweeps the pick is their median (the lower one of the middle two for an
    even count: a pick that a sweep really made). When their spread (largest / smallest
    pick) exceeds ``plan.spread_threshold`` the pick is uncertain and the candidates reach
    that much further each way: the multiples plan's multipliers above 1 are multiplied
    by the spread and those below divided by it; the refine plan's span is multiplied.
    """
    plan = plan or CandidatePlan()
    results = [results] if isinstance(results, SweepResult) else list(results)
    suggestions = [suggest(r, plan.rule) for r in results]
    found = sorted((s for s in suggestions if s.ok), key=lambda s: s.lr)
    pick = found[(len(found) - 1) // 2] if found else suggestions[0]
    spread = found[-1].lr / found[0].lr if len(found) > 1 else None
    uncertain = spread is not None and spread > plan.spread_threshold
    picks = tuple(s.lr for s in suggestions)
    if plan.candidate_rates is not None:
        return Selection(plan.rule, pick, plan.candidate_rates, None, picks, spread, uncertain)
    widen = spread if uncertain else 1.0
    if plan.plan == "multiples":
        multipliers = tuple(m * widen if m > 1 else m / widen if m < 1 else m for m in plan.candidate_multipliers)
    else:
        multipliers = refine_multipliers(plan, widen)
    candidates = tuple(pick.lr * m for m in multipliers) if pick.ok else ()
    return Selection(plan.rule, pick, candidates, multipliers, picks, spread, uncertain)


def refine_multipliers(plan: CandidatePlan, widen: float = 1.0) -> tuple[float, ...]:
    """The refine plan's first rung, as multiples of the pick: ``refine_rates`` log-spaced
    from 1 / span to span, span = ``refine_span`` x ``widen`` (with 9, 10 and 1: the pick
    and every quarter decade from a tenth of it to ten times it).

    >>> [round(m, 3) for m in refine_multipliers(CandidatePlan(plan="refine", refine_rates=5))]
    [0.1, 0.316, 1.0, 3.162, 10.0]
    """
    n, span = plan.refine_rates, math.log10(plan.refine_span * widen)
    return tuple(10 ** (span * (2 * i / (n - 1) - 1)) for i in range(n))


def continued(previous: CandidateResult | None, segment: CandidateResult) -> CandidateResult:
    """A candidate's result after one more rung: ``segment`` trained on from ``previous``
    (its losses appended; final loss, held-out figures from the segment's end)."""
    if previous is None:
        return segment
    losses = previous.losses + segment.losses
    return CandidateResult(
        lr=segment.lr, iterations=previous.iterations + segment.iterations, losses=losses,
        final_loss=segment.final_loss, last_k=segment.last_k,
        mean_last_k=mean_of_last(losses, segment.last_k), holdout_loss=segment.holdout_loss,
        holdout_accuracy=segment.holdout_accuracy, seconds=round(previous.seconds + segment.seconds, 3),
        ran_on=_joined(previous.ran_on, segment.ran_on),
    )


def _joined(before: str | None, after: str | None) -> str | None:
    """Where a training ran over two rungs: one place, or both in order."""
    if before is None or after is None or before == after:
        return after or before
    return f"{before} then {after}"  # no comma: the final-loss CSV has this column


def survivors(candidates: Sequence[CandidateResult], keep: int) -> list[float]:
    """The rates of the ``keep`` best candidates by the deciding measure (diverged ones never
    survive), in the order they were given."""
    measure = deciding_measure(candidates)
    ranked = sorted((c for c in candidates if _score(c, measure) < math.inf), key=lambda c: (_score(c, measure), c.lr))
    kept = {c.lr for c in ranked[:keep]}
    return [c.lr for c in candidates if c.lr in kept]


def _score(c: CandidateResult, measure: str | None) -> float:
    value = getattr(c, measure or MEASURES[1])
    return math.inf if c.diverged or value is None or not math.isfinite(value) else value


@dataclass(frozen=True)
class Recommendation:
    """The rate to train with: the candidate that did best on the deciding measure.

    Attributes:
        lr: the recommended rate (None if every candidate diverged, or there were none).
        measure: the measure that decided (one of :data:`MEASURES`), None without candidates.
        value: the recommended candidate's value of that measure.
        pick_lr: the rule's pick, for comparison (None without a reliable suggestion).
        tie_broken: another candidate was within :data:`TIE_TOLERANCE` and the lower rate won.
        evidence: one sentence saying why.
    """

    lr: float | None
    measure: str | None
    value: float | None
    pick_lr: float | None
    tie_broken: bool
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


def deciding_measure(candidates: Sequence[CandidateResult]) -> str | None:
    """``holdout_loss`` if every candidate that trained without diverging has one, else
    ``mean_last_k``; None if there are no candidates."""
    if not candidates:
        return None
    trained = [c for c in candidates if not c.diverged]
    return MEASURES[0] if trained and all(c.holdout_loss is not None for c in trained) else MEASURES[1]


def recommend(selection: Selection, candidates: Sequence[CandidateResult],
              tolerance: float = TIE_TOLERANCE) -> Recommendation:
    """The candidate with the lowest deciding measure (:func:`deciding_measure`).

    Diverged candidates are never recommended; candidates within ``tolerance`` (relative)
    of the best are tied and the lowest of their rates is recommended.
    """
    pick = selection.pick_lr
    measure = deciding_measure(candidates)
    if measure is None:
        return Recommendation(None, None, None, pick, False, selection.pick.reason)
    scored = [(getattr(c, measure), c) for c in candidates if not c.diverged]
    scored = [(v, c) for v, c in scored if v is not None and math.isfinite(v)]
    if not scored:
        return Recommendation(None, measure, None, pick, False,
                              f"every one of the {len(candidates)} candidates diverged: no rate to recommend")
    best_value = min(v for v, _ in scored)
    tied = [c for v, c in scored if v <= best_value + tolerance * abs(best_value)]
    winner = min(tied, key=lambda c: c.lr)
    value = getattr(winner, measure)
    best = min(scored, key=lambda vc: vc[0])[1]
    evidence = _evidence(selection, candidates, measure, winner, value)
    tie_broken = winner is not best
    if tie_broken:
        evidence += (f"; {best.lr:.3g} was within {tolerance:.1%} ({best_value:.4g}), so the lower rate "
                     f"is recommended")
    return Recommendation(winner.lr, measure, value, pick, tie_broken, evidence)


def _evidence(selection: Selection, candidates: Sequence[CandidateResult], measure: str,
              winner: CandidateResult, value: float) -> str:
    label, n, pick = MEASURE_LABELS[measure], len(candidates), selection.pick_lr
    head = f"{winner.lr:.3g} had the lowest {label} of the {n} candidates ({value:.4g})"
    mine = [c for c in candidates if pick is not None and math.isclose(c.lr, pick, rel_tol=1e-9)]
    if not mine:
        return head
    if mine[0] is winner:
        return f"the {selection.rule} pick {head}"
    pick_value = getattr(mine[0], measure)
    against = "the pick diverged" if mine[0].diverged or pick_value is None else f"the pick {pick:.3g} had {pick_value:.4g}"
    return f"{head}: {winner.lr / pick:.3g} x the {selection.rule} pick; {against}"


def final_loss_table(selection: Selection, candidates: Sequence[CandidateResult],
                     recommendation: Recommendation | None = None) -> list[dict]:
    """One row per candidate: those trained longest first (the refine plan stops some
    early), then by the deciding measure (diverged candidates last); marking the rule's
    pick and the recommended rate."""
    recommendation = recommendation or recommend(selection, candidates)
    order = sorted(candidates, key=lambda c: (-c.iterations, _score(c, recommendation.measure), c.lr))
    rows = []
    for rank, c in enumerate(order, start=1):
        rows.append({
            "rank": rank, "lr": c.lr, "multiplier": c.lr / selection.pick_lr if selection.pick_lr else None,
            "iterations": c.iterations, "final_loss": c.final_loss, "mean_last_k": c.mean_last_k,
            "holdout_loss": c.holdout_loss, "holdout_accuracy": c.holdout_accuracy,
            "pick": _same(c.lr, selection.pick_lr), "recommended": _same(c.lr, recommendation.lr),
            "ran_on": c.ran_on,
        })
    return rows


def _same(lr: float, other: float | None) -> bool:
    return other is not None and math.isclose(lr, other, rel_tol=1e-12)
