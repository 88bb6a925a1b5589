from __future__ import annotations

from pathlib import Path

from prefect import task

from lrf.candidates import CandidateResult
from lrf.cluster import ClusterRef
from lrf.config import CandidatePlan, Setup
from lrf.gluon import jobs
from lrf.runs import work_key
from tasks._ui import JobWatch


@task(name="train-candidate", retries=1, retry_delay_seconds=5,
      task_run_name="train-candidate-lr-{lr:.4g}-to-{end}")
def train_candidate(setup: Setup, init_params: str, lr: float, plan: CandidatePlan, cache_dir: str,
                    cluster: ClusterRef, slot: int = 0, start: int = 0, end: int | None = None,
                    resume_from: str | None = None, recompute: bool = False) -> tuple[CandidateResult, str | None]:
    """Train one candidate rate from the initial parameters (or go on from ``resume_from``,
    its state at iteration ``start``) to iteration ``end`` (default ``plan.iterations``),
    on ``cluster``'s slot ``slot`` (another worker if that one is gone). Returns the result,
    which records where it ran, and, for a training that may go on, its saved state; a
    training already in the cache is reused unless ``recompute``."""
    end = plan.iterations if end is None else end
    key = work_key("candidate", jobs.work_fields(setup), Path(init_params).name, lr, start, end, plan.last_k)
    state = Path(cache_dir) / f"state-{key}.params" if end < plan.iterations else None
    ui = JobWatch(f"train-candidate lr={lr:.4g}, iterations {start} to {end}", recompute)
    result = jobs.candidate_job(setup, init_params, lr, Path(cache_dir) / f"candidate-{key}.json",
                                place=jobs.Place(cluster, slot), iterations=end - start, last_k=plan.last_k,
                                start=start, resume_from=resume_from, state_out=state, watch=ui.watch)
    value = result, None if state is None or not state.is_file() else str(state)
    diverged = f"lr={lr:.4g}: the loss was not finite at iteration {start + len(result.losses)}"
    return ui.outcome(value, diverged if result.diverged else None)
