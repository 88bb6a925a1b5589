"""A user's ``init_params`` checked the same way by every engine, and refused in the same words.

Each engine reads the layout of its own files without its framework
(:mod:`lrf.gluon.params_file`, :mod:`lrf.pytorch.params_file`); :func:`check_file`
is the entry check around that reader, :func:`compare_layouts` says what keeps a
file of another network from loading.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

Layout = dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype)


def check_file(value: str | os.PathLike | None, read_layout: Callable[[Path], Layout]) -> str | None:
    """The entry check of an ``init_params`` parameter (None: none given): a file that ``read_layout``
    (an engine's reader) reads; return the value.

    Raises:
        ValueError: naming ``init_params`` and the value: missing, not a file (a
            folder), unreadable, or a file ``read_layout`` refuses (its reason follows).
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"init_params must be the path of a parameter file, got init_params={value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"init_params={str(value)!r} is not a file: it {why}")
    try:
        read_layout(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"init_params={str(value)!r} cannot be used: {error}") from None
    return str(value)


def compare_layouts(value: str | os.PathLike, given: Layout, wanted: Layout, model: str = "the model",
                    kind: str = "arrays") -> None:
    """Raise ValueError naming ``init_params`` (the file ``value``) unless ``given`` has the names of
    ``wanted``, each with the same shape and type; the message shows the first three differences
    and counts the entries as ``kind`` ("arrays" for MXNet, "tensors" for PyTorch).

    >>> compare_layouts("net.params", {"w": ((2,), "float32")}, {"w": ((3,), "float32")}, "net")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: init_params='net.params' does not fit net (...): w is (2,) float32 in the file, (3,) float32 in net
    """
    problems = [f"the file lacks {name} {_show(wanted[name])}" for name in wanted if name not in given]
    problems += [f"{name} is {_show(given[name])} in the file, {_show(wanted[name])} in {model}"
                 for name in wanted if name in given and given[name] != wanted[name]]
    problems += [f"the file's {name} is not in {model}" for name in given if name not in wanted]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValueError(f"init_params={str(value)!r} does not fit {model} (the file holds {len(given)} {kind}, "
                         f"{model} has {len(wanted)}): {shown}")


def show_shapes(counter: Counter) -> str:
    """The first three (shape, dtype) entries of ``counter``, for a message; "none" if empty."""
    return ", ".join(_show(entry) for entry in list(counter)[:3]) or "none"


def _show(entry: tuple[tuple[int, ...], str]) -> str:
    shape, dtype = entry
    return f"{shape} {dtype}"
