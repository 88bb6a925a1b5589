"""How the work of a run is executed: where, how many jobs at once, with how many threads.

Not part of what a run *is* (:mod:`lrf.config`): the same run executed with
other settings gives the same numbers. Framework-free; the flow and the
benchmarks schedule candidates with these functions, so both do the same thing.
The cluster that runs the jobs is :mod:`lrf.cluster`.

>>> lanes(5, at_once=2)
[[0, 2, 4], [1, 3]]
>>> threads_per_job(1, cores=2), threads_per_job(2, cores=2)
(None, 1)
>>> Execution(cluster='tcp://10.0.0.5:8786').at_once is None
True
>>> cpu_at_once(cores=2), cpu_at_once(cores=16)
(2, 3)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lrf._validate import bounded, check_bounds


CPU_AT_ONCE = 3  # jobs at once on CPU at most by default: the reference's three candidates side by side
CLUSTER_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://")
CLUSTER_PATTERN = r"^(" + "|".join(CLUSTER_SCHEMES) + r").+"  # the flow's typed parameter reads it


@dataclass(frozen=True)
class Execution:
    """How a run's jobs are executed.

    Attributes:
        at_once: jobs that run at the same time, each on a worker of its own; None (default):
            one per device (on CPU :func:`cpu_at_once`: 3, or fewer on fewer cores, which they share), or one per
            worker of a given ``cluster``.
        recompute: compute everything again instead of reusing finished work from the
            cache (False).
        cluster: the address of a Dask scheduler to run the jobs on (``tcp://HOST:8786``);
            None (default): a cluster on this machine, started and stopped by the run.

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    at_once: int | None = bounded(None, ge=1)
    recompute: bool = False
    cluster: str | None = None

    def __post_init__(self) -> None:
        check_bounds(self)
        if not isinstance(self.recompute, bool):
            raise TypeError(f"recompute must be true or false, got recompute={self.recompute!r}")
        if self.cluster is not None and (not isinstance(self.cluster, str) or not re.match(CLUSTER_PATTERN, self.cluster)):
            raise ValueError(f"cluster must be a Dask scheduler address such as tcp://HOST:8786, "
                             f"got cluster={self.cluster!r}")


def cpu_at_once(cores: int | None = None) -> int:
    """Jobs at once on CPU by default: :data:`CPU_AT_ONCE`, but no more than ``cores`` (default:
    this machine's). More CPU-bound jobs than cores add no throughput, and each worker pays
    MXNet's import at the start: on 2 cores, a third worker made the default digits run's
    warm-up ~3 s longer (benchmarks.scale_out)."""
    return max(1, min(CPU_AT_ONCE, cores or os.cpu_count() or 1))


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
