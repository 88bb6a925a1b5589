"""How the work of a run is executed: how many jobs at once, and with how many threads.

Not part of what a run *is* (:mod:`lrf.config`): the same run executed with
other settings gives the same numbers. Framework-free; the flow and the
benchmarks schedule candidates with these functions, so both do the same thing.

>>> lanes(5, at_once=2)
[[0, 2, 4], [1, 3]]
>>> threads_per_job(1, cores=2), threads_per_job(2, cores=2)
(None, 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lrf._validate import positive_int


@dataclass(frozen=True)
class Execution:
    """How a run's jobs are executed.

    Attributes:
        at_once: candidate trainings that run at the same time, each in a process of
            its own (3: the reference's three candidates side by side).
        recompute: compute everything again instead of reusing finished work from the
            cache (False).

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    at_once: int = 3
    recompute: bool = False

    def __post_init__(self) -> None:
        positive_int("at_once", self.at_once)
        if not isinstance(self.recompute, bool):
            raise TypeError(f"recompute must be true or false, got recompute={self.recompute!r}")


def lanes(num_jobs: int, at_once: int) -> list[list[int]]:
    """Job indices split into at most ``at_once`` lanes that run side by side, each lane in
    order: job i starts when job i - at_once has finished."""
    width = max(1, min(at_once, num_jobs))
    return [list(range(start, num_jobs, width)) for start in range(width)] if num_jobs else []


def threads_per_job(at_once: int, cores: int | None = None) -> int | None:
    """OpenMP threads for each of ``at_once`` jobs sharing ``cores`` (default: this machine's),
    or None for a lone job, which keeps MXNet's default (capping a lone job only slowed it,
    measured by the benchmarks)."""
    if at_once <= 1:
        return None
    return max(1, (cores or os.cpu_count() or 1) // at_once)
