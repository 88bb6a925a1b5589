from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.gluon import jobs
from lrf.gluon.experiment import Setup
from lrf.runs import new_run_dir


@task(name="create-run-folder")
def create_run_folder(output_root: str) -> str:
    """A new folder of this run's own under ``output_root``."""
    return str(new_run_dir(output_root))


@task(name="initialise-model")
def initialise_model(setup: Setup, run_dir: str) -> str:
    """Build and initialise the network (Xavier, seeded); save the initial parameters."""
    return str(jobs.initialise_model(setup, Path(run_dir) / "init.params", report=get_run_logger().info))
