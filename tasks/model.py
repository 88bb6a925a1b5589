from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from lrf.gluon import jobs
from lrf.gluon.experiment import Setup, identity
from lrf.runs import RunFolders, new_run_folders, work_key


@task(name="create-run-folder")
def create_run_folder(output_root: str) -> RunFolders:
    """A new folder of this run's own under ``output_root``, and the root's work cache."""
    return new_run_folders(output_root)


@task(name="initialise-model")
def initialise_model(setup: Setup, cache_dir: str) -> str:
    """Build and initialise the network (Xavier, seeded); save the initial parameters
    (once per setup: a file already in the cache is reused)."""
    out = Path(cache_dir) / f"init-{work_key('init', identity(setup))}.params"
    return str(jobs.initialise_model(setup, out, report=get_run_logger().info))
