import os
import sys
from pathlib import Path

import pytest

# the example user project (examples/spirals) importable here and in every process the tests
# start, as it is where its owner installed it next to lrf: its recipe is what the recipe tests run
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "spirals"
sys.path.insert(0, str(EXAMPLE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE), os.environ.get("PYTHONPATH")]))
EXAMPLE_RECIPE = "spirals.recipe:recipe"

# CIFAR-10 as MXNet RecordIO beside the repository (../shared); CI has it
CIFAR10_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The folder of ``train.rec``/``.idx`` and ``test.rec``/``.idx``: a missing file fails
    the test that asks for it (it is never skipped)."""
    missing = [name for name in ("train.rec", "train.idx", "test.rec", "test.idx")
               if not (CIFAR10_DIR / name).is_file()]
    if missing:
        pytest.fail(f"CI provides ../shared beside the repository; missing {', '.join(missing)} in {CIFAR10_DIR}")
    return CIFAR10_DIR


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API (SQLite) for the flow and report tests of this session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def local_jobs():
    """Where engine and task tests run their jobs: one local cluster of two CPU workers (the
    kind a run starts for itself), shared by the session (each worker imports MXNet once)."""
    from lrf.cluster import job_cluster
    from lrf.jobs import warm_up

    with job_cluster("cpu", at_once=2, warm_up=warm_up) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real Dask scheduler and two workers (``dask scheduler``, ``dask worker``, as a user
    starts them), shared by the session: flow tests that are not about the run's own
    cluster pass its address as ``cluster=``."""
    from tests.support.dask_cluster import running_dask_cluster

    with running_dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster
