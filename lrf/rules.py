"""Suggestion rules: plain functions ``rule(result) -> Suggestion``, looked up by name.

Every rule reads the same curve: the smoothed losses up to the first non-finite
one, against log10(lr). Derivatives are taken in log-lr space, on the smoothed
loss passed once more through a centred moving average over half a decade of
lr (:data:`DERIVATIVE_DECADES`: 13 points at the reference multiplier 1.1; from
one point at the low end of a linear sweep to dozens at its top): the reference
smoothing of 0.3 leaves the curve too noisy to differentiate point by point (on
a CIFAR-10 ResNet-18 sweep, a 5-point window put the steepest descent on the
noise of the plateau at 7e-5).

A curve that is too short, or that never falls, gives a :class:`Suggestion` with
``lr=None`` and the reason, never an exception and never a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from lrf._validate import one_of
from lrf.config import CandidatePlan, SweepConfig
from lrf.result import SweepResult

MIN_POINTS = 10  # fewer finite points than this is not a curve
MIN_DROP = 0.02  # the smoothed loss must fall by 2 % of its start to count as falling
# Width in log10(lr) of the moving average under every derivative: half a decade, rounded to
# the odd number of reference steps closest to it (13 x log10(1.1) = 0.54), so a reference
# sweep is averaged over exactly the 13 points it always was. A width in decades, not a point
# count: a linear sweep's points are sparse at its low end and dense at its top.
_REFERENCE_STEP = math.log10(SweepConfig.lr_multiplier)
DERIVATIVE_DECADES = (round(0.5 / _REFERENCE_STEP) | 1) * _REFERENCE_STEP
# The curve "turns" where it first comes within this fraction of its total fall of
# the smallest smoothed loss: a flat or noisy bottom then turns where it starts,
# not wherever rounding or noise put the last tiny dip.
TURN_TOLERANCE = 0.01
# cyclical_range: max_lr / base_lr stays in [MIN_CYCLE_RATIO, MAX_CYCLE_RATIO] (Smith 2017, section 3.3),
# base_lr is where the averaged loss has fallen by FALL_STARTED of its fall for good
MIN_CYCLE_RATIO = 3.0
MAX_CYCLE_RATIO = 10.0
FALL_STARTED = 0.1


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer: the rate, the point of the curve it comes from, and why.

    ``lr is None`` means "no reliable suggestion"; ``reason`` says what was wrong.
    """

    rule: str
    lr: float | None
    index: int | None
    loss: float | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.lr is not None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Suggestion":
        return cls(**data)


@dataclass(frozen=True)
class CyclicalRange:
    """(base_lr, max_lr) bounds for a cyclical schedule (Smith 2017, §3.3)."""

    base_lr: float | None
    max_lr: float | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.base_lr is not None


@dataclass(frozen=True)
class _Curve:
    """The part of a sweep every rule reads."""

    lrs: np.ndarray
    log_lrs: np.ndarray
    smoothed: np.ndarray
    turn: int  # where the curve reaches its bottom (see TURN_TOLERANCE)

    def averaged(self) -> np.ndarray:
        """The smoothed loss through a centred moving average over DERIVATIVE_DECADES of lr."""
        return _decade_average(self.log_lrs, self.smoothed, DERIVATIVE_DECADES / 2)

    def slope(self) -> np.ndarray:
        """d(smoothed loss) / d(log10 lr), on the :meth:`averaged` curve."""
        return np.gradient(self.averaged(), self.log_lrs)

    def at(self, rule: str, index: int, reason: str, lr: float | None = None) -> Suggestion:
        rate = float(self.lrs[index]) if lr is None else lr
        return Suggestion(rule, rate, index, float(self.smoothed[index]), reason)


def _read_curve(result: SweepResult, rule: str) -> _Curve | Suggestion:
    """The finite, falling part of the sweep, or the no-suggestion that explains why not."""
    lrs = np.asarray(result.lrs, dtype=float)
    smoothed = np.asarray(result.smoothed, dtype=float)
    finite = np.isfinite(smoothed) & np.isfinite(lrs) & (lrs > 0)
    end = len(smoothed) if finite.all() else int(np.argmin(finite))
    if end < MIN_POINTS:
        return _none(rule, f"too short: {end} finite points before the end of the sweep, need at least {MIN_POINTS}")
    lrs, smoothed = lrs[:end], smoothed[:end]
    lowest = float(smoothed.min())
    fall = smoothed[0] - lowest
    if fall < MIN_DROP * abs(smoothed[0]):
        drop = fall / max(abs(smoothed[0]), np.finfo(float).tiny)
        return _none(rule, f"the loss never falls: its smallest smoothed value is {drop:.1%} below the first, need {MIN_DROP:.0%}")
    turn = int(np.argmax(smoothed <= lowest + TURN_TOLERANCE * fall))
    if turn < 2:
        return _none(rule, "the loss only rises: the smallest smoothed loss is at the start of the sweep")
    return _Curve(lrs, np.log10(lrs), smoothed, turn)


def _none(rule: str, reason: str) -> Suggestion:
    return Suggestion(rule, None, None, None, f"no reliable suggestion: {reason}")


# --- the rules ------------------------------------------------------------------------


def reference(result: SweepResult) -> Suggestion:
    """The reference reading (SPEC §7): the highest rate at which the loss still falls,
    at most half the rate where the curve turns (reaches its smallest smoothed loss)."""
    curve = _read_curve(result, "reference")
    if isinstance(curve, Suggestion):
        return curve
    half = curve.lrs[curve.turn] / 2
    falling = np.flatnonzero((curve.slope()[: curve.turn] < 0) & (curve.lrs[: curve.turn] <= half))
    if falling.size == 0:
        return _none("reference", f"the loss does not fall below half the turning rate ({half:.3g})")
    return curve.at("reference", int(falling[-1]), f"highest rate still falling, <= half the turning rate {2 * half:.3g}")


def steepest(result: SweepResult) -> Suggestion:
    """Where the smoothed loss falls fastest per decade of learning rate, before the turn."""
    curve = _read_curve(result, "steepest")
    if isinstance(curve, Suggestion):
        return curve
    slope = curve.slope()[: curve.turn + 1]
    index = int(np.argmin(slope))
    if slope[index] >= 0:
        return _none("steepest", "the smoothed loss never decreases before the turn")
    return curve.at("steepest", index, f"steepest descent: {slope[index]:.3g} loss per decade of lr")


def valley(result: SweepResult) -> Suggestion:
    """fastai's "valley": inside the longest falling stretch of the smoothed loss,
    the point half-way between its first and second third."""
    curve = _read_curve(result, "valley")
    if isinstance(curve, Suggestion):
        return curve
    losses = curve.smoothed
    n = len(losses)
    # longest strictly decreasing subsequence ending at each point (O(n^2), n is a few hundred)
    length = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = length[:i][losses[:i] > losses[i]]
        if earlier.size:
            length[i] = earlier.max() + 1
    end = int(np.argmax(length))
    start = end - int(length[end]) + 1
    third = (end - start) / 3
    index = start + int(third) + int(third / 2)
    return curve.at("valley", index, f"valley of the longest falling stretch (points {start}..{end})")


def minimum(result: SweepResult) -> Suggestion:
    """A tenth of the rate where the smoothed loss reaches its bottom (fastai's "minimum")."""
    curve = _read_curve(result, "minimum")
    if isinstance(curve, Suggestion):
        return curve
    rate = float(curve.lrs[curve.turn]) / 10
    nearest = int(np.argmin(np.abs(curve.log_lrs - np.log10(rate))))
    return curve.at("minimum", nearest, f"a tenth of the rate where the loss bottoms out ({curve.lrs[curve.turn]:.3g})", lr=rate)


Rule = Callable[[SweepResult], Suggestion]
# the names a configuration may say (lrf.config.rule_names reads them here)
RULES: dict[str, Rule] = {"reference": reference, "steepest": steepest, "valley": valley, "minimum": minimum}
DEFAULT_RULE = CandidatePlan.rule


def suggest(result: SweepResult, rule: str = DEFAULT_RULE) -> Suggestion:
    """Apply the rule registered under ``rule`` (see :data:`RULES`) to ``result``.

    Raises:
        ValueError: unknown rule name.
    """
    one_of("rule", rule, RULES)
    return RULES[rule](result)


def cyclical_range(result: SweepResult, rule: str = DEFAULT_RULE) -> CyclicalRange:
    """Bounds for a cyclical schedule (Smith 2017, section 3.3), usable as they stand.

    ``max_lr`` is the rule's pick. ``base_lr`` is where the loss starts to fall, kept
    between ``max_lr / 10`` and ``max_lr / 3`` (so 3 <= max_lr / base_lr <= 10); the
    ``reason`` says which bound, if any, applied.

    "Starts to fall" is read on the curve the derivatives are taken from (the smoothed
    loss averaged over half a decade): the rate from which that curve stays below its
    plateau by at least a tenth of its fall to the bottom. The last crossing, not the
    first: plateau noise that dips that far and comes back is not the fall (on the
    CIFAR-10 reference sweep the smoothed loss's first dip, at 1.1e-6, passed for it).

    Why clamp to [3, 10]: Smith sets base_lr to 1/3 or 1/4 of max_lr by rule of thumb,
    and bounds closer than 3 make the cycle nearly a constant rate. A real sweep falls
    over several decades (the CIFAR-10 reference sweep from about 6e-5 to 0.04), so its
    start is far below any rate worth training at, and a cycle reaching down there
    spends its low end learning almost nothing; Smith's CIFAR-10 example cycles
    between 0.001 and 0.006, within a decade.

    Args:
        result: the sweep.
        rule: the rule that picks ``max_lr`` (default ``"reference"``, see :data:`RULES`).

    Returns:
        a :class:`CyclicalRange`; ``base_lr = max_lr = None`` with the rule's reason
        when the sweep gives no suggestion.

    Raises:
        ValueError: unknown rule name.

    >>> bounds = cyclical_range(SweepResult.load("docs/cifar10-reference/sweep.csv"), "steepest")  # doctest: +SKIP
    >>> round(bounds.base_lr, 6), round(bounds.max_lr, 5)   # doctest: +SKIP
    (0.000941, 0.00941)
    """
    one_of("rule", rule, RULES)
    curve = _read_curve(result, rule)
    if isinstance(curve, Suggestion):
        return CyclicalRange(None, None, curve.reason)
    pick = suggest(result, rule)
    if not pick.ok:
        return CyclicalRange(None, None, pick.reason)
    start = _fall_start(curve)
    low, high = pick.lr / MAX_CYCLE_RATIO, pick.lr / MIN_CYCLE_RATIO
    said = f"max_lr from rule {rule!r}; the loss starts to fall at {start:.3g}"
    if start < low:
        bound = f"more than {MAX_CYCLE_RATIO:g}x below max_lr: base_lr = max_lr / {MAX_CYCLE_RATIO:g}"
        return CyclicalRange(low, pick.lr, f"{said}, {bound} (the upper bound of max_lr / base_lr)")
    if start > high:
        bound = f"not {MIN_CYCLE_RATIO:g}x below max_lr: base_lr = max_lr / {MIN_CYCLE_RATIO:g}"
        return CyclicalRange(high, pick.lr, f"{said}, {bound} (the lower bound of max_lr / base_lr)")
    ratio = pick.lr / start
    return CyclicalRange(start, pick.lr, f"{said}: base_lr there, max_lr / base_lr = {ratio:.3g}, within the bounds")


def _fall_start(curve: _Curve) -> float:
    """The rate from which the averaged loss stays FALL_STARTED of its fall below its plateau."""
    averaged = curve.averaged()[: curve.turn + 1]
    bottom = int(np.argmin(averaged))
    top = float(averaged[: bottom + 1].max())
    still_up = np.flatnonzero(averaged[:bottom] > top - FALL_STARTED * (top - averaged[bottom]))
    return float(curve.lrs[still_up[-1] + 1 if still_up.size else 0])


def _decade_average(x: np.ndarray, values: np.ndarray, radius: float) -> np.ndarray:
    """At each point, the mean of the curve over ``radius`` either side of its ``x``
    (log10 lr, increasing): a window fixed in decades, whatever the points' spacing.

    The curve is read as a step: each value holds over its point's stretch of ``x`` (half
    way to each neighbour) and the end values hold beyond the ends, so a window near an end
    stays as wide and as centred as the others. A plain mean of the points inside the
    window would jump whenever a point enters or leaves it, and where points are sparse
    (the low end of a linear sweep) those jumps are larger than the slope being measured;
    it would also weigh the crowded top of every window of a linear sweep. On the reference
    schedule (a window of 13 steps, see DERIVATIVE_DECADES) this is exactly the centred
    13-point moving average, padded with the end values.
    """
    knots = np.concatenate([[x[0] - radius], (x[1:] + x[:-1]) / 2, [x[-1] + radius]])
    # the step curve's integral from the first knot: piecewise linear, so np.interp is exact
    area = np.concatenate([[0.0], np.cumsum(values * np.diff(knots))])
    return (np.interp(x + radius, knots, area) - np.interp(x - radius, knots, area)) / (2 * radius)
