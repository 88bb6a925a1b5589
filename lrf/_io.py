"""File helpers: atomic writes (a reader sees the old file or the complete new one, never
half) and strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file is hidden (``.name.XXXX.tmp``) and removed if the block raises,
    so no half-written artifact is left where a reader would take it as complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are for others to read too
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_float(value: float) -> float | str:
    """A float for strict JSON: non-finite values become "NaN", "Infinity", "-Infinity"
    (which ``float()`` reads back)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy ``source`` to ``target`` atomically, as a file of its own: a later write to either
    never reaches the other (a hard link would let a user's edit of a run folder's file
    change the cached original). Where the file system can (btrfs, XFS), the copy is a
    copy-on-write clone: instant and sharing the blocks until one side writes; elsewhere
    the bytes are copied: ResNet-18's initial parameters, 44.8 MB, in 0.23-0.26 s here (ext4,
    fsync included), once per run.
    """
    import shutil

    with atomic_path(target) as tmp:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            try:
                import fcntl

                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            except (ImportError, OSError):
                shutil.copyfileobj(src, dst, 1 << 20)
    return Path(target)


_FICLONE = 0x40049409  # Linux ioctl: clone a whole file (copy on write)


def to_json(data) -> str:
    """Strict JSON (indented, newline-terminated) with non-finite floats as strings
    (see :func:`json_float`)."""
    return json.dumps(_strict(data), indent=1, allow_nan=False) + "\n"


def _strict(value):
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value
