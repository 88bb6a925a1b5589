from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.candidates import Selection, select
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.gluon import jobs
from lrf.result import SweepResult
from lrf.runs import work_key


@task(name="lr-sweep")
def lr_sweep(setup: Setup, config: SweepConfig, init_params: str, cache_dir: str) -> SweepResult:
    """The range test from the saved initial parameters; progress goes to the run log
    (a sweep already in the cache is reused)."""
    key = work_key("sweep", jobs.work_fields(setup), config.to_dict(), Path(init_params).name)
    return jobs.sweep_job(setup, config, init_params, Path(cache_dir) / f"sweep-{key}.json",
                          report=get_run_logger().info)


@task(name="select-lr")
def select_lr(results: list[SweepResult], plan: CandidatePlan) -> Selection:
    """Apply the suggestion rule to each sweep, take the median pick, derive the candidate rates."""
    selection = select(results, plan)
    get_run_logger().info("%s: %s; candidates %s", plan.rule, selection.suggestion.reason,
                          [f"{lr:.4g}" for lr in selection.candidates])
    return selection
