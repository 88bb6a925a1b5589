"""A folder that nobody can write into, root included: for tests of "cannot be written"."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """Make ``path`` (a new, empty folder) unwritable for the duration: mode 0555 for a user;
    for root, whom modes do not stop, a read-only tmpfs mounted on it or else the immutable
    attribute (``chattr +i``). Fails the test, never skips it, if neither works."""
    path.mkdir()
    attempts = [(["chmod", "555", str(path)], ["chmod", "755", str(path)])]
    if os.geteuid() == 0:
        attempts = [(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(path)], ["umount", str(path)]),
                    (["chattr", "+i", str(path)], ["chattr", "-i", str(path)])]
    tried = []
    for make, undo in attempts:
        try:
            made = subprocess.run(make, capture_output=True, text=True)
        except FileNotFoundError as error:
            tried.append(f"{make[0]}: {error}")
            continue
        if made.returncode != 0:
            tried.append(f"{' '.join(make)}: {made.stderr.strip()}")
            continue
        if _writable(path):
            subprocess.run(undo, check=True)
            tried.append(f"{' '.join(make)}: still writable")
            continue
        try:
            yield path
        finally:
            subprocess.run(undo, check=True)
        return
    pytest.fail(f"cannot make a read-only folder at {path}: " + "; ".join(tried))


def _writable(path: Path) -> bool:
    try:
        (path / "probe").mkdir()
    except OSError:
        return False
    (path / "probe").rmdir()
    return True
