from __future__ import annotations

from pathlib import Path

from prefect import task

from lrf.cluster import ClusterRef
from lrf.config import Setup
from lrf.gluon import jobs
from lrf.runs import work_key
from tasks._ui import JobWatch


@task(name="initialise-model")
def initialise_model(setup: Setup, cache_dir: str, cluster: ClusterRef, recompute: bool = False) -> str:
    """Build and initialise the network (Xavier, seeded) on the cluster; save the initial
    parameters (once per setup: a file already in the cache is reused unless ``recompute``)."""
    out = Path(cache_dir) / f"init-{work_key('init', jobs.work_fields(setup))}.params"
    ui = JobWatch(f"initialise-model {setup.model}", recompute)
    return ui.outcome(str(jobs.init_job(setup, out, place=jobs.Place(cluster), watch=ui.watch)))
