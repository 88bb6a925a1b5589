from __future__ import annotations

import os
from pathlib import Path

from prefect import get_run_logger, task

from lrf.check import CandidateResult
from lrf.gluon import jobs
from lrf.gluon.experiment import Setup, identity
from lrf.runs import work_key


@task(name="train-candidate", retries=1, retry_delay_seconds=5, task_run_name="train-candidate-lr-{lr:.4g}")
def train_candidate(setup: Setup, init_params: str, lr: float, iterations: int, last_k: int, parallel: int,
                    cache_dir: str) -> CandidateResult:
    """Train one candidate rate from the initial parameters, in a process of its own
    (a training already in the cache is reused)."""
    key = work_key("candidate", identity(setup), Path(init_params).name, lr, iterations, last_k)
    out = Path(cache_dir) / f"candidate-{key}.json"
    # parallel children share the cores; a lone child keeps MXNet's own default
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    return jobs.train_candidate(setup, init_params, lr, out, iterations=iterations, last_k=last_k,
                                threads=threads, report=get_run_logger().info)
