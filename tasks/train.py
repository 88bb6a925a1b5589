from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.candidates import CandidateResult
from lrf.config import CandidatePlan, Setup
from lrf.gluon import jobs
from lrf.runs import work_key


@task(name="train-candidate", retries=1, retry_delay_seconds=5, task_run_name="train-candidate-lr-{lr:.4g}")
def train_candidate(setup: Setup, init_params: str, lr: float, plan: CandidatePlan, threads: int | None,
                    cache_dir: str) -> CandidateResult:
    """Train one candidate rate from the initial parameters, in a process of its own with
    ``threads`` OpenMP threads (None: MXNet's default); a training already in the cache
    is reused."""
    key = work_key("candidate", setup.cache_fields(), Path(init_params).name, lr, plan.iterations, plan.last_k)
    return jobs.candidate_job(setup, init_params, lr, Path(cache_dir) / f"candidate-{key}.json",
                              iterations=plan.iterations, last_k=plan.last_k, threads=threads,
                              report=get_run_logger().info)
