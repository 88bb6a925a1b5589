from __future__ import annotations

from prefect import task

from lrf.runs import RunFolders, new_run_folders


@task(name="create-run-folder")
def create_run_folder(output_root: str) -> RunFolders:
    """A new folder of this run's own under ``output_root``, and the root's work cache."""
    return new_run_folders(output_root)
