"""An engine's optimizers, checked at a process's entry from a table (no framework imported).

Each engine declares its optimizers by name with the arguments each takes besides the
learning rate (its tests compare the table with the framework's own), the arguments every
one of them takes, the ranges that make sense by argument name, and the true/false flags;
:func:`check_in_table` refuses what the framework would refuse later, or silently misuse.
"""

from __future__ import annotations


def check_in_table(name: str, params: dict | None, optimizers: dict[str, tuple[str, ...]], common: tuple[str, ...],
                   ranges: dict[str, tuple[float, float, bool]], flags: tuple[str, ...], whose: str) -> None:
    """Raise ValueError/TypeError naming ``optimizer`` or ``optimizer_params`` and the value
    unless ``optimizers`` has ``name`` and it takes every argument of ``params``, each of the
    right type and in its range ``(low, high, high included)``; ``whose`` names the table
    in the message ("MXNet's").

    >>> check_in_table("sgd", {"momentum": 1.5}, {"sgd": ("momentum",)}, (), {"momentum": (0.0, 1.0, False)}, (), "")
    Traceback (most recent call last):
    ...
    ValueError: optimizer_params={'momentum': 1.5}: momentum must be in [0, 1)
    """
    if name not in optimizers:
        raise ValueError(f"optimizer must be one of {whose}: {', '.join(sorted(optimizers))}; got optimizer={name!r}")
    takes = optimizers[name] + common
    for key, value in (params or {}).items():
        shown = f"optimizer_params={{{key!r}: {value!r}}}"
        if key not in takes:
            raise ValueError(f"{shown}: optimizer={name!r} takes {', '.join(takes)}")
        if key in flags:
            if not isinstance(value, bool):
                raise TypeError(f"{shown}: {key} is true or false")
        elif key in ranges:
            low, high, closed = ranges[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{shown}: {key} is a number")
            if value < low or value > high or (value == high and not closed):
                raise ValueError(f"{shown}: {key} must be {_bound(low, high, closed)}")


def _bound(low: float, high: float, closed: bool) -> str:
    if high == float("inf"):  # a lower bound of 1e-300 stands for "> 0"
        return "> 0" if 0 < low <= 1e-300 else f">= {low:g}"
    if low == -float("inf"):
        return f"<= {high:g}" if closed else f"< {high:g}"
    return f"in [{low:g}, {high:g}{']' if closed else ')'}"
