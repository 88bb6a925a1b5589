"""Prefect tasks: thin wrappers over lrf library calls that exchange paths and small values."""
from __future__ import annotations

from prefect import get_run_logger, task

from lrf.config import Setup
from lrf.engine import prepare_setup


@task(name="prepare-dataset")
def prepare_dataset(setup: Setup) -> Setup:
    """Check the data, model and device the engine will use, and complete the setup for
    the jobs: paths absolute (CIFAR-10 is downloaded by the first job, once)."""
    prepared, size = prepare_setup(setup)
    if prepared.recipe is not None:  # its data is the recipe's: known where the jobs call it
        get_run_logger().info("recipe %s (its network, loss and data)", prepared.recipe)
        return prepared
    get_run_logger().info("data %s: %d training samples, %d held out; model %s", prepared.data,
                          size.num_train, size.num_holdout, prepared.model)
    return prepared
