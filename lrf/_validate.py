"""Input checks shared by the core: each error names the parameter and the value."""

from __future__ import annotations

import math
from numbers import Integral, Real


def positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise."""
    real = _finite_real(name, value)
    if real <= 0:
        raise ValueError(f"{name} must be > 0, got {name}={value!r}")
    return real


def float_in(name: str, value: object, low: float, high: float, *, high_open: bool = True) -> float:
    """Return ``value`` as a float if ``low <= value < high`` (or ``<= high``), else raise."""
    real = _finite_real(name, value)
    above = real >= high if high_open else real > high
    if real < low or above:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {name}={value!r}")
    return real


def greater_than(name: str, value: object, bound: float) -> float:
    """Return ``value`` as a float if it is finite and ``> bound``, else raise."""
    real = _finite_real(name, value)
    if real <= bound:
        raise ValueError(f"{name} must be > {bound}, got {name}={value!r}")
    return real


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value!r}")
    return int(value)


def one_of(name: str, value: object, choices, renamed: dict | None = None) -> str:
    """Return ``value`` if it is one of ``choices``, else raise listing them (and, for a name
    that ``renamed`` maps to its new one, saying so)."""
    if value not in choices:
        listed = ", ".join(sorted(choices))
        hint = f" ({value!r} is now {renamed[value]!r})" if renamed and value in renamed else ""
        raise ValueError(f"{name} must be one of {listed}; got {name}={value!r}{hint}")
    return value  # type: ignore[return-value]


def _finite_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {name}={value!r}")
    real = float(value)
    if not math.isfinite(real):
        raise ValueError(f"{name} must be finite, got {name}={value!r}")
    return real


# --- bounds declared on a configuration's fields ----------------------------------------


def bounded(default, *, why: str = "", **limits: float):
    """A dataclass field with ``default`` and numeric ``limits`` (``ge``, ``gt``, ``lt``: the
    names pydantic's ``Field`` takes, so the flow's typed parameters read the same ones;
    :func:`limits_of`). ``why`` is said in the error. :func:`check_bounds` checks them."""
    import dataclasses

    return dataclasses.field(default=default, metadata={"limits": limits, "why": why})


def limits_of(cls: type, name: str) -> dict[str, float]:
    """The limits declared on field ``name`` of the dataclass ``cls`` (empty if none)."""
    import dataclasses

    return dict(next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("limits", {}))


def check_bounds(obj: object) -> None:
    """Check every field of the dataclass instance ``obj`` that declares limits (None passes:
    an optional field that is not set); raise naming the field and the value."""
    import dataclasses

    for field in dataclasses.fields(obj):
        limits, value = field.metadata.get("limits"), getattr(obj, field.name)
        if not limits or value is None:
            continue
        name = field.name
        why = f" ({field.metadata['why']})" if field.metadata.get("why") else ""
        if field.type in (int, "int", "int | None"):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"{name} must be an integer, got {name}={value!r}")
            if value < limits["ge"]:
                raise ValueError(f"{name} must be >= {limits['ge']}{why}, got {name}={value!r}")
            continue
        if "ge" in limits and "lt" in limits:
            float_in(name, value, limits["ge"], limits["lt"])
        elif limits.get("gt") == 0:
            positive_float(name, value)
        else:
            greater_than(name, value, limits["gt"])


def parameter_of(error: Exception, among=None) -> str | None:
    """The parameter an error of these checks names (every message says ``name=value``), for
    an entry point that turns it back into its option: the first one named that is ``among``
    the entry point's parameters (any, if None); None if it names none of them.

    >>> parameter_of(ValueError("iterations must be >= 2, got iterations=1"))
    'iterations'
    >>> parameter_of(ValueError("rungs=3 with refine_rates=9 leave an empty rung at iterations=3"), ["iterations"])
    'iterations'
    """
    import re

    names = re.findall(r"\b([a-z_]+)=", str(error))
    return next((name for name in names if among is None or name in among), None)
