from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.cluster import ClusterRef
from lrf.config import Setup
from lrf.gluon import jobs
from lrf.gluon.params_file import check_fits
from lrf.runs import cached_copy, work_key
from tasks._ui import JobWatch


@task(name="initialise-model")
def initialise_model(setup: Setup, cache_dir: str, cluster: ClusterRef, recompute: bool = False,
                     init_params: str | None = None) -> str:
    """Build and initialise the network (Xavier, seeded) on the cluster; save the initial
    parameters (once per setup: a file already in the cache is reused unless ``recompute``).
    With ``init_params``, the run starts from that file instead: it must hold the fresh
    network's arrays (ValueError naming it otherwise), and is copied into the cache."""
    out = Path(cache_dir) / f"init-{work_key('init', jobs.work_fields(setup))}.params"
    ui = JobWatch(f"initialise-model {setup.model}", recompute)
    start = fresh = jobs.init_job(setup, out, place=jobs.Place(cluster), watch=ui.watch)
    if init_params is not None:  # the fresh network's parameters say what the given file must hold
        check_fits(init_params, fresh, f"{setup.model} for data={setup.data!r}")
        start = cached_copy(init_params, cache_dir, "init-given")
        get_run_logger().info("starting from init_params=%r, copied to %s", init_params, start)
    return ui.outcome(str(start))
