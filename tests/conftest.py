from pathlib import Path

import pytest

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
