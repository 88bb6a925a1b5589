"""What a person sees of a job in the Prefect UI: a progress bar while it runs, and a state
name that says when it was reused or diverged."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from prefect.states import Completed

from lrf.jobs import Watch


class JobWatch:
    """A :class:`lrf.jobs.Watch` for a job run by a task: its lines in the run log, its
    fraction done in a progress artifact (inside a task run only), what it reused."""

    def __init__(self, title: str, recompute: bool):
        self.reused: list[Path] = []
        self.artifact = None
        if TaskRunContext.get() is not None:
            self.artifact = create_progress_artifact(progress=0.0, description=title)
        self.watch = Watch(report=get_run_logger().info, done=self._done, reused=self.reused.append,
                           recompute=recompute)

    def _done(self, fraction: float) -> None:
        if self.artifact is not None:
            update_progress_artifact(self.artifact, progress=round(100 * fraction, 1))

    def outcome(self, value: Any, diverged: str | None = None) -> Any:
        """``value``, as the result of a Completed state named "Diverged" (message
        ``diverged``) or "Reused" when either applies: the task did its job, the flow goes on,
        and the UI says what happened. Outside a task run (``task.fn`` in a test), the value.
        The progress bar ends full: the job is over (a diverged one stops early)."""
        if self.artifact is not None:
            update_progress_artifact(self.artifact, progress=100.0)
        if diverged is not None:
            return completed_as(value, "Diverged", diverged)
        if self.reused:
            return completed_as(value, "Reused", f"reused {self.reused[0]} (a finished result in the cache)")
        return value


def completed_as(value: Any, name: str, message: str) -> Any:
    """``value`` as the result of a Completed state named ``name``; outside a task run, the value."""
    if TaskRunContext.get() is None:
        return value
    return Completed(data=value, name=name, message=message)
