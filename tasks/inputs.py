from __future__ import annotations

from prefect import task

from lrf.check import CheckPlan
from lrf.runs import check_output_root
from lrf.sweep import SweepConfig


@task(name="check-inputs")
def check_inputs(setup: dict, sweep: dict, plan: dict, output_root: str):
    """Validate every flow parameter before anything runs: (Setup, SweepConfig, CheckPlan)."""
    from lrf.gluon.experiment import Setup

    check_output_root(output_root)
    return Setup(**setup), SweepConfig(**sweep), CheckPlan(**plan)
