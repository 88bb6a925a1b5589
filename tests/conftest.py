import pytest


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API (SQLite) for the flow and report tests of this session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
