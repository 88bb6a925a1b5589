"""Curve pathologies: every one ends with a stated reason and, for every rule, either
a suggestion or an explicit "no reliable suggestion"; never a crash, never an endless
loop (the timeout would catch one)."""

from __future__ import annotations

import math

import pytest

from lrf import RULES, StopReason, SweepResult, find, suggest
from lrf.plot import plot_sweep

pytestmark = pytest.mark.timeout(60)


class ScriptedLearner:
    """Reports ``loss(step, lr)``; snapshot/restore of a counter stands in for the model."""

    def __init__(self, loss):
        self.loss, self.step, self.state = loss, 0, 0

    def iteration(self, lr=None, take_step=True):
        if not take_step:  # the dry run: a harmless value, not part of the curve
            return 2.3
        self.state += 1
        self.step += 1
        return self.loss(self.step - 1, lr)

    def snapshot(self):
        return self.state

    def restore(self, snapshot):
        self.state = snapshot


def falling_then_rising(step, lr):  # an ordinary curve: 2.3 falling to ~1, blowing up past lr 0.3
    return 2.3 - 1.3 * min(1.0, max(0.0, math.log10(lr / 1e-4) / 3)) + (0 if lr < 0.3 else 50 * (lr - 0.3))


def at(k, value):
    return lambda step, lr: value if step == k else falling_then_rising(step, lr)


CASES = [
    # name, loss function, sweep overrides, expected stop reason, is a suggestion expected?
    ("nan at iteration 130", at(130, math.nan), {}, StopReason.NON_FINITE, True),
    ("+inf at iteration 130", at(130, math.inf), {}, StopReason.NON_FINITE, True),
    ("-inf at iteration 130", at(130, -math.inf), {}, StopReason.NON_FINITE, True),
    ("nan at the first iteration", at(0, math.nan), {}, StopReason.NON_FINITE, False),
    ("nan before the fall", at(40, math.nan), {}, StopReason.NON_FINITE, False),
    ("never diverges: stops at max_lr", lambda s, lr: 2.3 / (1 + 100 * lr), {}, StopReason.MAX_LR, True),
    ("never diverges: stops at max_iter", lambda s, lr: 2.3, {"lr_multiplier": 1.0001}, StopReason.MAX_ITER, False),
    ("flat curve", lambda s, lr: 1.0, {}, StopReason.MAX_LR, False),
    ("zero loss throughout", lambda s, lr: 0.0, {}, StopReason.MAX_LR, False),
    ("negative, falling then rising", lambda s, lr: falling_then_rising(s, lr) - 5.0, {}, StopReason.DIVERGED, True),
    ("starts at zero then rises", lambda s, lr: 0.0 if s == 0 else 0.1 * s, {}, StopReason.DIVERGED, False),
    ("diverges at once", lambda s, lr: 2.3 * 1.5**s, {}, StopReason.DIVERGED, False),
    ("too short for any rule", falling_then_rising, {"max_iter": 6}, StopReason.MAX_ITER, False),
    ("ordinary curve", falling_then_rising, {}, StopReason.DIVERGED, True),
]


@pytest.mark.parametrize("name, loss, overrides, reason, expect_pick", CASES, ids=[c[0] for c in CASES])
def test_pathology_ends_with_a_reason_and_an_explicit_answer(tmp_path, name, loss, overrides, reason, expect_pick):
    learner = ScriptedLearner(loss)
    result = find(learner, **overrides)
    assert result.stop_reason is reason
    assert learner.state == 0  # restored
    picks = {rule: suggest(result, rule) for rule in RULES}
    for rule, pick in picks.items():
        if pick.ok:
            assert math.isfinite(pick.lr) and result.lrs[0] <= pick.lr <= result.lrs[-1], (rule, pick)
        else:
            assert pick.reason.startswith("no reliable suggestion: "), (rule, pick)
    assert picks["reference"].ok is expect_pick, picks["reference"].reason
    # what every run writes still works on such curves
    assert SweepResult.load(result.save(tmp_path / "sweep.json")).stop_reason is reason
    plot_sweep(result, picks.values(), path=tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
