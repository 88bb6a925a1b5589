"""The range-test loop (SPEC §4) over the narrow learner protocol.

The loop never imports a framework: anything with ``iteration``, ``snapshot`` and
``restore`` (see :class:`lrf.learner.Learner`) can be swept.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

from lrf import schedules
from lrf._validate import greater_than, one_of, positive_float, positive_int
from lrf.learner import Learner, check_learner
from lrf.result import SweepResult
from lrf.stopping import CRITERIA, StopReason, make_criterion

log = logging.getLogger(__name__)

SCHEDULES = ("exponential", "linear")


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep; the defaults are the reference's (SPEC §4, §5).

    Attributes:
        lr_start: rate of the first iteration (1e-6).
        lr_multiplier: factor between iterations of the reference schedule (1.1).
        lr_end: if set, sweep a range instead: ``max_iter`` steps from ``lr_start``
            to ``lr_end`` (None).
        schedule: "exponential" (reference) or "linear" (Smith 2017; needs ``lr_end``).
        smoothing: weight of the old running mean, in [0, 1) (0.3).
        min_iter: no divergence stop before this many iterations (20).
        criterion: stopping criterion name, see :data:`lrf.stopping.CRITERIA` ("reference").
        max_iter: at most this many iterations (1000; the reference has no bound).
        max_lr: never train at a rate above this (10.0; the reference has no bound).

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    lr_start: float = 1e-6
    lr_multiplier: float = 1.1
    lr_end: float | None = None
    schedule: str = "exponential"
    smoothing: float = 0.3
    min_iter: int = 20
    criterion: str = "reference"
    max_iter: int = 1000
    max_lr: float = 10.0

    def __post_init__(self) -> None:
        positive_float("lr_start", self.lr_start)
        greater_than("lr_multiplier", self.lr_multiplier, 1.0)
        one_of("schedule", self.schedule, SCHEDULES)
        one_of("criterion", self.criterion, CRITERIA)
        positive_int("max_iter", self.max_iter)
        positive_float("max_lr", self.max_lr)
        make_criterion(self.criterion, self.smoothing, self.min_iter)  # validates both
        if self.lr_start > self.max_lr:
            raise ValueError(f"lr_start must be <= max_lr, got lr_start={self.lr_start!r}, max_lr={self.max_lr!r}")
        if self.lr_end is None:
            if self.schedule == "linear":
                raise ValueError("schedule='linear' needs lr_end (a linear sweep has two ends), got lr_end=None")
            return
        positive_float("lr_end", self.lr_end)
        if self.lr_end > self.max_lr:
            raise ValueError(f"lr_end must be <= max_lr, got lr_end={self.lr_end!r}, max_lr={self.max_lr!r}")
        self.make_schedule()  # lr_end > lr_start, max_iter >= 2

    def make_schedule(self) -> schedules.Schedule:
        """The schedule ``step -> lr`` this configuration describes."""
        if self.lr_end is None:
            return schedules.exponential(self.lr_start, self.lr_multiplier)
        if self.max_iter < 2:
            raise ValueError(f"a range sweep (lr_end set) needs max_iter >= 2, got max_iter={self.max_iter!r}")
        make = schedules.exponential_range if self.schedule == "exponential" else schedules.linear_range
        return make(self.lr_start, self.lr_end, self.max_iter)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepConfig":
        return cls(**data)


@dataclass(frozen=True)
class SweepProgress:
    """What the progress callback receives after every iteration."""

    iteration: int
    lr: float
    loss: float
    smoothed_loss: float


ProgressCallback = Callable[[SweepProgress], None]


def find(
    learner: Learner,
    config: SweepConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    **overrides: Any,
) -> SweepResult:
    """Run the learning-rate range test on ``learner`` and put it back as it was.

    One iteration without a step materialises lazy parameters and the optimizer;
    then the learner is snapshot, trained one batch per rate of the schedule until
    the criterion says the loss diverged (or a loss is not finite, or a bound is
    hit), and restored from the snapshot in a ``finally``: also when the sweep
    raises or is interrupted.

    Args:
        learner: follows :class:`lrf.learner.Learner`.
        config: the sweep parameters (default :class:`SweepConfig()`, the reference).
        progress: called with a :class:`SweepProgress` after every iteration.
        **overrides: fields of :class:`SweepConfig` to change, e.g. ``lr_start=1e-5``.

    Returns:
        a :class:`lrf.result.SweepResult`, one point per iteration, in order.

    Raises:
        ValueError/TypeError: invalid parameters or learner, before the learner is touched.

    Example:
        >>> result = find(learner, lr_start=1e-5)  # doctest: +SKIP
        >>> result.stop_reason
        <StopReason.DIVERGED: 'diverged'>
    """
    config = dataclasses.replace(config or SweepConfig(), **overrides)
    check_learner(learner)
    schedule = config.make_schedule()
    criterion = make_criterion(config.criterion, config.smoothing, config.min_iter)

    learner.iteration(None, take_step=False)
    snapshot = learner.snapshot()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    try:
        step = 0
        while True:
            if step >= config.max_iter:
                reason = StopReason.MAX_ITER
                break
            lr = schedule(step)
            if lr > config.max_lr:
                reason = StopReason.MAX_LR
                break
            loss = float(learner.iteration(lr))
            if not math.isfinite(loss):
                lrs.append(lr), losses.append(loss), smoothed.append(math.nan)
                reason = StopReason.NON_FINITE
                break
            smoothed_loss, diverged = criterion(loss)
            lrs.append(lr), losses.append(loss), smoothed.append(smoothed_loss)
            if progress is not None:
                progress(SweepProgress(step, lr, loss, smoothed_loss))
            if diverged:
                reason = StopReason.DIVERGED
                break
            step += 1
    finally:
        learner.restore(snapshot)
    log.info("sweep stopped after %d iterations (%s) at lr=%.3g", len(lrs), reason.value, lrs[-1] if lrs else math.nan)
    return SweepResult(tuple(lrs), tuple(losses), tuple(smoothed), reason, config)
