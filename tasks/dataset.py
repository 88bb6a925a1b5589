from __future__ import annotations

from dataclasses import replace

from prefect import get_run_logger, task

from lrf.gluon.data import prepare
from lrf.gluon.experiment import Setup, check_fits


@task(name="prepare-dataset", retries=2, retry_delay_seconds=10)
def prepare_dataset(setup: Setup) -> Setup:
    """Resolve the data source so every later process can open it (CIFAR-10 downloaded
    once, paths made absolute); the setup with the resolved data."""
    resolved, info = prepare(setup.data)
    check_fits(setup, info)
    get_run_logger().info("data %s: %s", resolved, info)
    return replace(setup, data=resolved)
