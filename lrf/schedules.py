"""Learning-rate schedules for the range test: pure functions of the step index.

Each public constructor validates its arguments and returns a closure ``step -> lr``;
the private ones behind them take values a :class:`lrf.config.SweepConfig` has
validated already (the sweep builds its schedule from one). Step 0 is the first
iteration of the sweep.

>>> exponential(1e-6, 1.1)(2)
1.21e-06
"""

from __future__ import annotations

from typing import Callable

from lrf._validate import greater_than, positive_float, positive_int
from lrf.config import SweepConfig

Schedule = Callable[[int], float]


def exponential(lr_start: float = SweepConfig.lr_start, lr_multiplier: float = SweepConfig.lr_multiplier) -> Schedule:
    """The reference schedule: ``lr = lr_start * lr_multiplier ** step`` (SPEC §4).

    Args:
        lr_start: rate of the first iteration, > 0 (default 1e-6).
        lr_multiplier: factor between two iterations, > 1 (default 1.1).

    Raises:
        ValueError/TypeError: a non-positive or non-finite rate, a multiplier <= 1.
    """
    return _exponential(positive_float("lr_start", lr_start), greater_than("lr_multiplier", lr_multiplier, 1.0))


def exponential_range(lr_start: float, lr_end: float, num_steps: int) -> Schedule:
    """Geometric steps from ``lr_start`` (step 0) to ``lr_end`` (step ``num_steps - 1``).

    >>> exponential_range(1e-4, 1.0, 5)(4)
    1.0
    """
    return _exponential_range(*_range_args(lr_start, lr_end, num_steps))


def linear_range(lr_start: float, lr_end: float, num_steps: int) -> Schedule:
    """Evenly spaced rates from ``lr_start`` to ``lr_end``: Smith's original (2017) test.

    >>> linear_range(0.0001, 0.0101, 3)(1)
    0.0051
    """
    return _linear_range(*_range_args(lr_start, lr_end, num_steps))


def _exponential(lr_start: float, lr_multiplier: float) -> Schedule:
    def schedule(step: int) -> float:
        return lr_start * lr_multiplier**step

    return schedule


def _exponential_range(lr_start: float, lr_end: float, num_steps: int) -> Schedule:
    ratio = lr_end / lr_start

    def schedule(step: int) -> float:
        # the closed form hits lr_end exactly on the last step, unlike repeated products
        return lr_end if step == num_steps - 1 else lr_start * ratio ** (step / (num_steps - 1))

    return schedule


def _linear_range(lr_start: float, lr_end: float, num_steps: int) -> Schedule:
    increment = (lr_end - lr_start) / (num_steps - 1)

    def schedule(step: int) -> float:
        return lr_end if step == num_steps - 1 else lr_start + increment * step

    return schedule


def _range_args(lr_start: float, lr_end: float, num_steps: int) -> tuple[float, float, int]:
    lr_start = positive_float("lr_start", lr_start)
    lr_end = positive_float("lr_end", lr_end)
    num_steps = positive_int("num_steps", num_steps, minimum=2)
    if lr_end <= lr_start:
        raise ValueError(f"lr_end must be > lr_start, got lr_end={lr_end!r}, lr_start={lr_start!r}")
    return lr_start, lr_end, num_steps
