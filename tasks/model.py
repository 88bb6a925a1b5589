from __future__ import annotations

from prefect import get_run_logger, task

from lrf.cache import WorkCache
from lrf.cluster import ClusterRef
from lrf.config import Setup
from lrf.engine import engine_for
from lrf.jobs import init_job
from tasks._ui import JobWatch


@task(name="initialise-model")
def initialise_model(setup: Setup, cache_dir: str, cluster: ClusterRef, recompute: bool = False,
                     init_params: str | None = None) -> str:
    """Build and initialise the network (Xavier, seeded) on the cluster; save the initial
    parameters (once per setup: a file already in the cache is reused unless ``recompute``).
    With ``init_params``, the run starts from that file instead: it must hold the fresh
    network's arrays (ValueError naming it otherwise), and is copied into the cache."""
    cache = WorkCache(cache_dir)
    ui = JobWatch(f"initialise-model {setup.network}", recompute)
    start = fresh = init_job(setup, cache, executor=cluster, watch=ui.watch)
    if init_params is not None:  # the fresh network's parameters say what the given file must hold
        engine_for(setup.engine).check_fits(init_params, fresh, setup.subject)
        start = cache.copy_in(init_params)
        get_run_logger().info("starting from init_params=%r, copied to %s", init_params, start)
    return ui.outcome(str(start))
