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


def one_of(name: str, value: object, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if value not in choices:
        listed = ", ".join(sorted(choices))
        raise ValueError(f"{name} must be one of {listed}; got {name}={value!r}")
    return value  # type: ignore[return-value]


def _finite_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {name}={value!r}")
    real = float(value)
    if not math.isfinite(real):
        raise ValueError(f"{name} must be finite, got {name}={value!r}")
    return real
