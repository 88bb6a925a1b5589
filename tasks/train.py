from __future__ import annotations

from prefect import task

from lrf._signals import stopping
from lrf.cache import WorkCache
from lrf.candidates import CandidateResult
from lrf.cluster import ClusterRef
from lrf.config import Setup
from lrf.jobs import candidate_job
from lrf.run import Training
from tasks._ui import JobWatch


def _not_stopping(task, task_run, state) -> bool:
    """Retry a job lost with its worker, unless the run is stopping: then its workers are
    being stopped, and a retry (after its delay) would only hold the end back."""
    return not stopping()


@task(name="train-candidate", retries=1, retry_delay_seconds=5, retry_condition_fn=_not_stopping,
      task_run_name="train-candidate-lr-{training.lr:.4g}-to-{training.end}")
def train_candidate(setup: Setup, init_params: str, training: Training, cache_dir: str, cluster: ClusterRef,
                    slot: int = 0, recompute: bool = False) -> tuple[CandidateResult, str | None]:
    """Train one candidate rate from the initial parameters (or go on from its saved state)
    as ``training`` says, on ``cluster``'s slot ``slot`` (another worker if that one is gone).
    Returns the result, which records where it ran, and, for a training that may go on, its
    saved state; a training already in the cache is reused unless ``recompute``."""
    ui = JobWatch(f"train-candidate lr={training.lr:.4g}, iterations {training.start} to {training.end}", recompute)
    result, state = candidate_job(setup, init_params, training.lr, WorkCache(cache_dir), executor=cluster, slot=slot,
                                  iterations=training.end - training.start, last_k=training.last_k,
                                  start=training.start, resume_from=training.resume_from,
                                  saves_state=training.saves_state, watch=ui.watch)
    value = result, None if state is None else str(state)
    diverged = f"lr={training.lr:.4g}: the loss was not finite at iteration {training.start + len(result.losses)}"
    return ui.outcome(value, diverged if result.diverged else None)
