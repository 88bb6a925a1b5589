import math
from pathlib import Path

import numpy as np
import pytest

from lrf import RULES, StopReason, SweepConfig, SweepResult, cyclical_range, find, schedules, suggest
from tests.core.quadratic import QuadraticLearner

TURN = 0.1  # where the synthetic curve below has its smallest loss
CIFAR10_SWEEP = Path(__file__).resolve().parents[2] / "docs/cifar10-reference/sweep.csv"


def synthetic(n=140, noise=0.0, seed=0):
    """A textbook range-test curve: flat, falls around lr 1e-3, turns at 0.1, blows up."""
    lrs = 1e-6 * 1.1 ** np.arange(n)
    x = np.log10(lrs)
    loss = 2.3 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + 0.5 * np.exp(6 * (x - math.log10(TURN)))
    loss = loss + noise * np.random.RandomState(seed).randn(n)
    return SweepResult(lrs, loss, loss, StopReason.DIVERGED, SweepConfig())


INFLECTION = 0.05  # where fall_then_rise falls fastest per decade of lr

# the schedules lrf offers, each sweeping the same curve over 1e-6 or 1e-4 .. 1
SCHEDULES = {
    "exponential": (schedules.exponential(1e-6, 1.1), 146, {}),
    "exponential_range": (
        schedules.exponential_range(1e-4, 1.0, 200), 200, {"lr_start": 1e-4, "lr_end": 1.0, "max_iter": 200},
    ),
    "linear_range": (
        schedules.linear_range(1e-4, 1.0, 200), 200,
        {"lr_start": 1e-4, "lr_end": 1.0, "max_iter": 200, "schedule": "linear"},
    ),
}


def fall_then_rise(lrs):
    """A sigmoid fall in log10(lr) centred on INFLECTION, then a rise like lr**6 (turns near 0.23)."""
    return 2.3 - 1.5 / (1 + np.exp(-4 * np.log10(lrs / INFLECTION))) + 0.5 * (lrs / 0.5) ** 6


def swept(schedule, noise=0.0, seed=0):
    """fall_then_rise recorded by a sweep on one of SCHEDULES (the loss is its own smoothing)."""
    rate, steps, config = SCHEDULES[schedule]
    lrs = np.array([rate(step) for step in range(steps)])
    loss = fall_then_rise(lrs) + noise * np.random.RandomState(seed).randn(steps)
    return SweepResult(lrs, loss, loss, StopReason.MAX_ITER, SweepConfig(**config))


def turn_index(smoothed):
    """First point within 1 % of the total fall of the bottom (lrf.rules.TURN_TOLERANCE)."""
    smoothed = np.asarray(smoothed)
    lowest = smoothed.min()
    return int(np.flatnonzero(smoothed <= lowest + 0.01 * (smoothed[0] - lowest))[0])


def test_every_rule_picks_a_rate_on_the_falling_part():
    result = synthetic()
    turn = result.lrs[int(np.argmin(result.smoothed))]
    for name in RULES:
        pick = suggest(result, name)
        assert pick.ok, pick.reason
        assert 1e-5 < pick.lr < turn, name
        assert pick.rule == name and pick.loss == result.smoothed[pick.index]


def test_reference_is_highest_falling_rate_at_most_half_the_turn():
    result = synthetic()
    turn = turn_index(result.smoothed)
    pick = suggest(result, "reference")
    assert pick.lr <= result.lrs[turn] / 2 < result.lrs[pick.index + 1]
    assert result.smoothed[pick.index + 1] < result.smoothed[pick.index]  # still falling there


def test_steepest_is_the_inflection_of_the_fall():
    pick = suggest(synthetic(), "steepest")
    assert pick.lr == pytest.approx(1e-3, rel=0.25)  # the sigmoid's centre


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_steepest_is_the_inflection_on_every_schedule(schedule):
    # the derivative's window spans half a decade wherever it is: sized in points from the
    # median spacing, it took 115 of the linear sweep's 200 points and put steepest at 0.20, by the turn
    pick = suggest(swept(schedule), "steepest")
    assert pick.lr == pytest.approx(INFLECTION, rel=0.15)


def test_steepest_on_a_noisy_linear_sweep():
    # the dense top of a linear sweep is smoothed over half a decade too, not point by point
    for seed in range(5):
        pick = suggest(swept("linear_range", noise=0.02, seed=seed), "steepest")
        assert pick.lr == pytest.approx(INFLECTION, rel=0.25), seed


def test_flat_bottom_turns_where_it_starts():
    # a bottom flat to rounding must not push the turn to wherever the last tiny dip is
    result = synthetic()
    smoothed = np.array(result.smoothed)
    bottom = turn_index(smoothed)
    smoothed[bottom : bottom + 30] = smoothed[bottom] - np.linspace(0, 1e-9, 30)
    flat = SweepResult(result.lrs, smoothed, smoothed, StopReason.DIVERGED, result.config)
    assert suggest(flat, "minimum").lr <= result.lrs[bottom] / 10 < result.lrs[bottom + 29] / 10


def test_minimum_is_a_tenth_of_the_turning_rate():
    result = synthetic()
    pick = suggest(result, "minimum")
    assert pick.lr == pytest.approx(result.lrs[turn_index(result.smoothed)] / 10)
    assert abs(math.log10(result.lrs[pick.index] / pick.lr)) < math.log10(1.1)


def test_rules_are_stable_under_noise():
    clean = suggest(synthetic(), "reference").lr
    for seed in range(5):
        noisy = suggest(synthetic(noise=0.02, seed=seed), "reference").lr
        assert clean / 2 < noisy < clean * 2


def test_default_rule_is_reference():
    result = synthetic()
    assert suggest(result) == suggest(result, "reference")


def test_flat_curve_gives_no_suggestion_with_reason():
    lrs = 1e-6 * 1.1 ** np.arange(100)
    flat = SweepResult(lrs, np.full(100, 2.3), np.full(100, 2.3), StopReason.MAX_ITER, SweepConfig())
    for name in RULES:
        pick = suggest(flat, name)
        assert not pick.ok and pick.lr is None
        assert "no reliable suggestion: the loss never falls" in pick.reason


def test_too_short_curve_gives_no_suggestion():
    short = SweepResult((1e-3, 1e-2, 1e-1), (2.0, 1.5, 9.0), (2.0, 1.5, 9.0), StopReason.DIVERGED, SweepConfig())
    for name in RULES:
        assert "too short: 3 finite points" in suggest(short, name).reason


def test_nan_early_in_the_curve_leaves_too_few_points():
    result = synthetic()
    smoothed = list(result.smoothed)
    smoothed[5] = math.nan
    broken = SweepResult(result.lrs, result.losses, smoothed, StopReason.NON_FINITE, result.config)
    assert not suggest(broken).ok


def test_rules_read_only_the_finite_part():
    result = synthetic()
    cut = int(np.argmin(result.smoothed)) + 5
    truncated = SweepResult(
        result.lrs[: cut + 1], result.losses[:cut] + (math.nan,), result.smoothed[:cut] + (math.nan,),
        StopReason.NON_FINITE, result.config,
    )
    assert suggest(truncated).lr == suggest(result).lr


def test_quadratic_sweep_picks_below_two_over_a():
    a = 4.0
    result = find(QuadraticLearner(a=a, floor=1.0))
    for name in RULES:
        pick = suggest(result, name)
        assert pick.ok and pick.lr < 2 / a < result.lrs[-1], name


def test_unknown_rule():
    with pytest.raises(ValueError, match="rule='magic'"):
        suggest(synthetic(), "magic")


def test_cyclical_range_spans_the_fall():
    bounds = cyclical_range(synthetic())
    assert bounds.ok
    assert bounds.base_lr < bounds.max_lr == suggest(synthetic()).lr
    assert 1e-5 < bounds.base_lr < 1e-3


def assert_usable_cycle(result, rule):
    """max_lr is the rule's pick; 3 <= max_lr / base_lr <= 10; the reason names the bound that applied."""
    bounds = cyclical_range(result, rule)
    assert bounds.ok, bounds.reason
    assert bounds.max_lr == suggest(result, rule).lr
    ratio = bounds.max_lr / bounds.base_lr
    assert bounds.base_lr < bounds.max_lr and 3 <= ratio <= 10, (rule, bounds)
    if ratio == 10:
        assert "base_lr = max_lr / 10" in bounds.reason, bounds
    elif ratio == 3:
        assert "base_lr = max_lr / 3" in bounds.reason, bounds
    else:
        assert "within the bounds" in bounds.reason, bounds
    return bounds


@pytest.mark.parametrize("rule", RULES)
def test_cyclical_range_on_the_cifar10_reference_sweep(rule):
    # the smoothed loss's first dip (1.1e-6) passed for the start of the fall: base_lr was
    # 1.1e-6 for every rule, max_lr / base_lr up to 16 700
    bounds = assert_usable_cycle(SweepResult.load(CIFAR10_SWEEP), rule)
    assert bounds.base_lr > 1e-4


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_cyclical_range_is_usable_on_every_schedule(schedule, rule):
    assert_usable_cycle(swept(schedule), rule)
    assert_usable_cycle(swept(schedule, noise=0.02), rule)


@pytest.mark.parametrize("rule", RULES)
def test_cyclical_range_is_usable_on_noisy_curves(rule):
    for seed in range(5):
        assert_usable_cycle(synthetic(noise=0.02, seed=seed), rule)


def test_cyclical_base_is_where_the_fall_starts_when_within_bounds():
    # synthetic(): the sigmoid has made a tenth of its fall at 10**(-3 - ln(9)/3) = 1.9e-4
    bounds = assert_usable_cycle(synthetic(), "steepest")
    assert "within the bounds" in bounds.reason
    assert bounds.base_lr == pytest.approx(1.9e-4, rel=0.25)


def test_cyclical_base_ignores_a_dip_in_the_plateau():
    # plateau noise that dips by a fifth of the fall and comes back is not the start of the fall
    result = synthetic()
    smoothed = np.array(result.smoothed)
    smoothed[5:15] -= 0.2 * (smoothed[0] - smoothed.min())
    dipped = SweepResult(result.lrs, smoothed, smoothed, StopReason.DIVERGED, result.config)
    assert cyclical_range(dipped, "steepest") == cyclical_range(result, "steepest")


def test_cyclical_base_is_clamped_to_the_bounds():
    result = synthetic()
    # the fall starts 1.6 decades below the reference pick (1.7e-4, 0.0071): base_lr = max_lr / 10
    far = assert_usable_cycle(result, "reference")
    assert far.base_lr == far.max_lr / 10 and "upper bound" in far.reason
    # valley picks before the fall starts: base_lr = max_lr / 3
    near = assert_usable_cycle(result, "valley")
    assert near.base_lr == near.max_lr / 3 and "lower bound" in near.reason


def test_cyclical_range_unknown_rule():
    with pytest.raises(ValueError, match="rule='magic'"):
        cyclical_range(synthetic(), "magic")


def test_cyclical_range_without_a_curve():
    lrs = 1e-6 * 1.1 ** np.arange(50)
    flat = SweepResult(lrs, np.ones(50), np.ones(50), StopReason.MAX_ITER, SweepConfig())
    bounds = cyclical_range(flat)
    assert not bounds.ok and bounds.max_lr is None and "never falls" in bounds.reason
