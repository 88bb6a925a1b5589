"""The one protocol between the sweep loop and a training framework."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Learner(Protocol):
    """One iteration at a given rate, snapshot, restore (SPEC §2).

    ``iteration(lr, take_step)`` sets the rate if ``lr`` is given, trains on the
    next batch (no parameter update when ``take_step`` is False) and returns the
    batch's mean loss as a float. ``snapshot()`` returns an opaque copy of every
    parameter and the optimizer state; ``restore(snapshot)`` puts them back
    bit-for-bit.
    """

    def iteration(self, lr: float | None = None, take_step: bool = True) -> float: ...

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


def check_learner(learner: object) -> None:
    """Raise TypeError unless ``learner`` has the three methods of :class:`Learner`."""
    missing = [name for name in ("iteration", "snapshot", "restore") if not callable(getattr(learner, name, None))]
    if missing:
        raise TypeError(f"learner must have iteration(), snapshot() and restore(); {learner!r} lacks {', '.join(missing)}")
