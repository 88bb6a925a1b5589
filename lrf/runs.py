"""Run folders and the work cache under an output root.

A run folder (``root/run-...``) belongs to one run and is never reused. The
work cache (``root/cache/``) holds what runs can share: the initial parameters,
sweeps and candidate trainings, each under a name derived from everything that
determines it (the data's content among it: :func:`lrf.gluon.jobs.work_fields`).
Every file is written atomically, and what is read back is verified: whole, and
about the work asked for (:mod:`lrf.cache`; a file that is not is set aside and the
work done again). A run that was killed and started again with the same
parameters finds its finished work there instead of redoing it. Deleting
``cache/`` at any time only costs recomputation. Run folders get copies, never
links, of cached files: what a user does to a run folder stays there.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lrf._io import copy_file
from lrf.cache import file_sha256

DEFAULT_OUTPUT_ROOT = "lrf-runs"  # every run gets a new folder under it
COMPLETE_MARKER = "summary.json"  # written last: a folder with it is complete
CACHE_DIR = "cache"
CACHE_VERSION = 2  # bump when a change to lrf makes cached work wrong (2: keys hold the data's fingerprint)


@dataclass(frozen=True)
class RunFolders:
    run_dir: str  # this run's own artifacts
    cache_dir: str  # work shared by runs under the same root


def check_output_root(root: str | os.PathLike) -> str:
    """``root`` must be a folder or not exist yet (it is then created); raise ValueError otherwise."""
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"output_root must be a folder, got output_root={str(root)!r} (a file)")
    for parent in path.resolve().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"output_root={str(root)!r} lies below a file ({parent})")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"output_root={str(root)!r} cannot be created: {parent} is not writable")
            break
    return str(root)


def new_run_folders(root: str | os.PathLike) -> RunFolders:
    """A new run folder under ``root``, and the root's work cache (created if missing)."""
    run_dir = new_run_dir(root)
    cache_dir = run_dir.parent / CACHE_DIR
    cache_dir.mkdir(exist_ok=True)
    return RunFolders(str(run_dir), str(cache_dir))


def work_key(*parts) -> str:
    """A short name for a piece of work: a hash of everything that determines it.

    >>> work_key({"model": "small-cnn"}, 0.1) == work_key({"model": "small-cnn"}, 0.1)
    True
    """
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_copy(source: str | os.PathLike, cache_dir: str | os.PathLike, prefix: str) -> Path:
    """``source`` copied into the work cache as ``PREFIX-KEY.params``, KEY the start of its
    SHA-256: work whose cache key holds that name is keyed by the file's content (an
    edited file is other work), and the run uses a copy that a later edit of ``source``
    cannot reach. A copy already there with the same SHA-256 is used as it is."""
    digest = file_sha256(source)
    target = Path(cache_dir) / f"{prefix}-{digest[:16]}.params"
    if not (target.is_file() and file_sha256(target) == digest):
        copy_file(source, target)
    return target


def new_run_dir(root: str | os.PathLike, prefix: str = "run") -> Path:
    """Create and return ``root/PREFIX-YYYYmmdd-HHMMSS-XXXXXX``, a folder nobody else has.

    ``mkdir`` without ``exist_ok`` is atomic, so two runs started in the same second
    on the same root still get two folders.
    """
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = root / f"{prefix}-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
