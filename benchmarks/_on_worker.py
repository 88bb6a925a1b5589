"""Functions the scale-out benchmark sends to a Dask worker with :func:`lrf.cluster.run_job`.

A module of their own (not ``benchmarks.scale_out``, which runs as ``__main__``): the
worker imports them by name. Each takes ``run_job``'s two trailing arguments, the
inputs (files' bytes) and the job's event topic.
"""

from __future__ import annotations

import json
from typing import Any

_rigs: dict[str, Any] = {}  # a learner per setup, kept on the worker between jobs


def nothing(inputs: dict, topic: str) -> None:
    """A job that does nothing: its round trip is the floor of every job's overhead."""
    return None


def receive(inputs: dict, topic: str) -> int:
    """A job that only receives its inputs (by value, with the task) and says how many bytes came."""
    return sum(len(data) for data in inputs.values())


def iteration_seconds(setup: dict, lr: float, inputs: dict, topic: str) -> float:
    """One training iteration of ``setup``'s network on this worker, on a fixed batch (the
    training's own speed, no data loading: the strictest yardstick), timed with the device idle
    before and drained after (:func:`benchmarks._engine.sync`). The learner is built on the first
    call and kept, warmed by two untimed iterations."""
    from benchmarks._common import timed
    from benchmarks._engine import Rig, fixed_batch_learner, make_loader, sync
    from lrf.config import Setup

    key = json.dumps(setup, sort_keys=True)
    if key not in _rigs:
        setup_ = Setup(**setup)
        rig = Rig(setup_, loader=make_loader(setup_, loader_workers=0))
        _rigs[key] = (rig, fixed_batch_learner(rig))
        for _ in range(2):
            _rigs[key][1].iteration(lr)
        sync()
    learner = _rigs[key][1]
    return timed(lambda: learner.iteration(lr), wait=sync)


def release(inputs: dict, topic: str) -> int:
    """Close the learners this worker keeps (their loaders' threads); how many there were."""
    count = len(_rigs)
    for rig, _ in _rigs.values():
        rig.close()
    _rigs.clear()
    return count
