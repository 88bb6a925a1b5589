"""The range-test loop (SPEC §4) over the narrow learner protocol.

The loop never imports a framework: anything with ``iteration``, ``snapshot`` and
``restore`` (see :class:`lrf.learner.Learner`) can be swept.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from lrf import schedules
from lrf._signals import raise_if_interrupted
from lrf.config import SweepConfig
from lrf.learner import Learner, check_learner
from lrf.result import SweepResult
from lrf.stopping import CRITERIA, StopReason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepProgress:
    """What the progress callback receives after every iteration."""

    iteration: int
    lr: float
    loss: float
    smoothed_loss: float


ProgressCallback = Callable[[SweepProgress], None]


def make_schedule(config: SweepConfig) -> schedules.Schedule:
    """The schedule ``step -> lr`` that ``config`` describes (validated already, by the config)."""
    if config.lr_end is None:
        return schedules._exponential(config.lr_start, config.lr_multiplier)
    make = schedules._exponential_range if config.schedule == "exponential" else schedules._linear_range
    return make(config.lr_start, config.lr_end, config.max_iter)


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

    Example (SGD on the loss ``w**2 / 2``, which diverges above lr = 2):
        >>> class Quadratic:
        ...     w = 1.0
        ...     def iteration(self, lr=None, take_step=True):
        ...         loss = self.w ** 2 / 2
        ...         if take_step:
        ...             self.w -= lr * self.w
        ...         return loss
        ...     def snapshot(self):
        ...         return self.w
        ...     def restore(self, w):
        ...         self.w = w
        >>> learner = Quadratic()
        >>> result = find(learner, lr_start=1.5)
        >>> result.stop_reason, len(result), learner.w
        (<StopReason.DIVERGED: 'diverged'>, 20, 1.0)
    """
    config = config or SweepConfig()
    if overrides:  # the config is validated at construction: only a changed one is built again
        config = dataclasses.replace(config, **overrides)
    check_learner(learner)
    schedule = make_schedule(config)
    criterion = CRITERIA[config.criterion].from_config(config)

    learner.iteration(None, take_step=False)
    snapshot = learner.snapshot()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    try:
        step = 0
        while True:
            raise_if_interrupted()  # a Ctrl-C swallowed by a destructor stops the sweep here
            if step >= config.max_iter:
                reason = StopReason.MAX_ITER
                break
            lr = schedule(step)
            if lr > config.max_lr:
                reason = StopReason.MAX_LR
                break
            loss = _as_loss(learner.iteration(lr), lr)
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


def _as_loss(value: Any, lr: float) -> float:
    """The batch's mean loss as a float; anything but a real number (an array, None, a string
    "2.3") is the learner's bug, named as such rather than as a bare float() error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(f"learner.iteration(lr={lr!r}) must return the batch's mean loss as a float, "
                        f"got {shown} ({type(value).__name__})")
    return float(value)

