"""Make a task run's outcome visible in the Prefect UI by its state's name."""
from __future__ import annotations

from typing import Any

from prefect.context import TaskRunContext
from prefect.states import Completed


def completed_as(value: Any, name: str, message: str) -> Any:
    """``value`` as the result of a Completed state named ``name`` (e.g. "Diverged"): a task
    that did its job but whose outcome deserves a look stays Completed (the flow does not
    fail) and says so where a person looks. Outside a task run (a unit test calling
    ``task.fn``) the plain value."""
    if TaskRunContext.get() is None:
        return value
    return Completed(data=value, name=name, message=message)
