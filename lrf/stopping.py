"""Stopping criteria for the sweep: when has the loss clearly diverged?

A criterion is called with each new (finite) loss and returns the smoothed loss
and whether to stop. Non-finite losses and the iteration/rate bounds are the
sweep loop's business (:mod:`lrf.sweep`), so every criterion gets them for free.

>>> criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=2)
>>> criterion(1.0), criterion(2.5)
((1.0, False), (2.5, True))
"""

from __future__ import annotations

import enum
from typing import Protocol

from lrf._validate import float_in, greater_than, one_of, positive_int
from lrf.config import SweepConfig

DEFAULT_SMOOTHING = SweepConfig.smoothing
DEFAULT_MIN_ITER = SweepConfig.min_iter
BEST_FACTOR = 4.0  # fastai uses 4, pytorch-lr-finder 5


class StopReason(str, enum.Enum):
    """Why a sweep ended."""

    DIVERGED = "diverged"  # the criterion saw the smoothed loss blow up
    NON_FINITE = "non_finite"  # a loss was NaN or infinite
    MAX_ITER = "max_iter"  # the iteration bound (or the end of a range schedule)
    MAX_LR = "max_lr"  # the next rate would have exceeded max_lr


class Criterion(Protocol):
    def __call__(self, loss: float) -> tuple[float, bool]:
        """Take the next finite loss; return (smoothed loss, stop?)."""


class TwiceFirstCriterion:
    """SPEC §5, exactly: stop once ``running_mean > 2 * first_loss`` and ``counter >= min_iter``.

    ``running_mean = (1 - smoothing) * loss + smoothing * running_mean``: ``smoothing``
    weights the *old* mean, so 0 means no smoothing.

    For a first loss <= 0 (not a cross-entropy) ``2 * first_loss`` would be *below*
    the first loss and stop at once; the comparison is therefore written as
    ``running_mean > first_loss + |first_loss|``, which is the same test for every
    positive first loss.

    Args:
        smoothing: weight of the old mean, in [0, 1) (default 0.3).
        min_iter: no stop before this many losses (default 20).
    """

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING, min_iter: int = DEFAULT_MIN_ITER):
        self._start(float_in("smoothing", smoothing, 0.0, 1.0), positive_int("min_iter", min_iter))

    @classmethod
    def from_config(cls, config: SweepConfig) -> "TwiceFirstCriterion":
        """A fresh criterion with ``config``'s smoothing and ``min_iter`` (validated by the config)."""
        criterion = cls.__new__(cls)
        criterion._start(config.smoothing, config.min_iter)
        return criterion

    def _start(self, smoothing: float, min_iter: int) -> None:
        self.smoothing = float(smoothing)
        self.min_iter = int(min_iter)
        self.counter = 0
        self.first_loss: float | None = None
        self.running_mean: float | None = None

    def __call__(self, loss: float) -> tuple[float, bool]:
        self.counter += 1
        if self.first_loss is None:
            self.first_loss = self.running_mean = loss
        else:
            self.running_mean = (1 - self.smoothing) * loss + self.smoothing * self.running_mean
        threshold = self.first_loss + abs(self.first_loss)
        return self.running_mean, self.running_mean > threshold and self.counter >= self.min_iter


class BestCriterion(TwiceFirstCriterion):
    """Stop once the smoothed loss exceeds ``factor`` x the best smoothed loss so far.

    Same smoothing as the reference; useful when the loss first falls a long way
    (fastai and pytorch-lr-finder use this form with factor 4 and 5).
    """

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING, min_iter: int = DEFAULT_MIN_ITER, factor: float = BEST_FACTOR):
        super().__init__(smoothing, min_iter)
        self.factor = greater_than("factor", factor, 1.0)

    def _start(self, smoothing: float, min_iter: int) -> None:
        super()._start(smoothing, min_iter)
        self.factor = BEST_FACTOR
        self.best: float | None = None

    def __call__(self, loss: float) -> tuple[float, bool]:
        smoothed, _ = super().__call__(loss)
        self.best = smoothed if self.best is None else min(self.best, smoothed)
        threshold = self.best + (self.factor - 1) * abs(self.best)
        return smoothed, smoothed > threshold and self.counter >= self.min_iter


# the names a configuration may say (lrf.config.criterion_names reads them here)
CRITERIA: dict[str, type[TwiceFirstCriterion]] = {"twice-first": TwiceFirstCriterion, "best": BestCriterion}


def make_criterion(name: str = SweepConfig.criterion, smoothing: float = DEFAULT_SMOOTHING,
                   min_iter: int = DEFAULT_MIN_ITER) -> Criterion:
    """Build the stopping criterion registered under ``name`` (see :data:`CRITERIA`)."""
    one_of("criterion", name, CRITERIA)
    return CRITERIA[name](smoothing=smoothing, min_iter=min_iter)
