from __future__ import annotations

from prefect import task

from lrf.cluster import check_cluster
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import Execution
from lrf.engine import engine_for
from lrf.runs import check_output_root


@task(name="check-inputs")
def check_inputs(setup: dict, sweep: dict, plan: dict, execution: dict, output_root: str,
                 init_params: str | None = None):
    """Validate every flow parameter before anything runs: (Setup, SweepConfig, CandidatePlan, Execution)."""
    check_output_root(output_root)
    checked = Setup(**setup), SweepConfig(**sweep), CandidatePlan(**plan), Execution(**execution)
    engine_for(checked[0].engine).check_init_params(init_params)
    check_cluster(checked[3].cluster)
    return checked
