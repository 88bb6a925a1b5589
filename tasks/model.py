from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.config import Setup
from lrf.gluon import jobs
from lrf.runs import work_key


@task(name="initialise-model")
def initialise_model(setup: Setup, cache_dir: str) -> str:
    """Build and initialise the network (Xavier, seeded); save the initial parameters
    (once per setup: a file already in the cache is reused)."""
    out = Path(cache_dir) / f"init-{work_key('init', jobs.work_fields(setup))}.params"
    return str(jobs.init_job(setup, out, report=get_run_logger().info))
