from __future__ import annotations

from prefect import get_run_logger, task

from lrf.cache import WorkCache
from lrf.candidates import Selection, select
from lrf.cluster import ClusterRef
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.jobs import sweep_job
from lrf.result import SweepResult
from tasks._ui import JobWatch


@task(name="lr-sweep")
def lr_sweep(setup: Setup, config: SweepConfig, init_params: str, cache_dir: str, cluster: ClusterRef,
             slot: int = 0, recompute: bool = False) -> SweepResult:
    """The range test from the saved initial parameters, on ``cluster``'s slot ``slot``; progress
    goes to the run log and a progress artifact (a sweep already in the cache is reused unless
    ``recompute``)."""
    ui = JobWatch(f"lr-sweep (batch order seed {setup.seed})", recompute)
    result = sweep_job(setup, config, init_params, WorkCache(cache_dir), executor=cluster, slot=slot, watch=ui.watch)
    return ui.outcome(result)


@task(name="select-lr")
def select_lr(results: list[SweepResult], plan: CandidatePlan) -> Selection:
    """Apply the suggestion rule to each sweep, take the median pick, derive the candidate rates."""
    selection = select(results, plan)
    get_run_logger().info("%s: %s; candidates %s", plan.rule, selection.pick.reason,
                          [f"{lr:.4g}" for lr in selection.candidates])
    return selection
