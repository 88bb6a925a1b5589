"""Run folders and the work cache under an output root.

A run folder (``root/run-...``) belongs to one run and is never reused. The
work cache (``root/cache/``) holds what runs can share: the initial parameters,
sweeps and candidate trainings, each under a name derived from everything that
determines it (the data's content among it), and verified when read back: whole, and
about the work asked for. :mod:`lrf.cache` owns all of that (keys, names, records,
verification, setting aside); this module owns the folders. A run that was killed and started again with the same
parameters finds its finished work there instead of redoing it. Deleting
``cache/`` at any time only costs recomputation. Run folders get copies, never
links, of cached files: what a user does to a run folder stays there.

Where results go is checked before any work (:func:`check_can_create`: not a file,
not below one, names the file system takes, a location that can be written), and
an output folder a user names (``lrf find --out``) is claimed atomically
(:func:`claim_output`), so two runs never write into one folder.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


DEFAULT_OUTPUT_ROOT = "lrf-runs"  # every run gets a new folder under it
COMPLETE_MARKER = "summary.json"  # written last: a folder with it is complete
CACHE_DIR = "cache"


@dataclass(frozen=True)
class RunFolders:
    run_dir: str  # this run's own artifacts
    cache_dir: str  # work shared by runs under the same root


def check_output_root(root: str | os.PathLike) -> str:
    """``root`` must be a folder, or a path this process can create; raise ValueError otherwise
    (naming ``output_root`` and the value; see :func:`check_can_create`), and so must its work
    cache, ``root/cache``, if it is there already. Changes nothing."""
    check_can_create(root, "output_root")
    cache = Path(root).expanduser() / CACHE_DIR
    if cache.exists() and not cache.is_dir():
        raise ValueError(f"output_root={str(root)!r} holds a file named {CACHE_DIR!r} where its work cache "
                         f"goes (a folder)")
    if cache.is_dir():
        check_can_create(cache, "output_root")
    return str(root)


def check_can_create(path: str | os.PathLike, name: str) -> None:
    """Raise ValueError naming ``name`` and ``path`` unless ``path`` is a folder or can be made
    one here: its nearest existing ancestor is a folder this process can write into (tried by
    making and removing a temporary folder there: ``os.access`` says yes to root on a
    read-only or immutable location), and every name still to create fits the file system."""
    shown = f"{name}={str(path)!r}"
    target = Path(path).expanduser().absolute()
    try:
        if target.is_dir():
            _try_writing(target, shown)
            return
        if target.exists():
            raise ValueError(f"{shown} is a file, not a folder")
        existing = next(p for p in target.parents if p.exists())
    except OSError as error:  # ENAMETOOLONG from stat, ELOOP, EACCES on a parent...
        raise ValueError(f"{shown} cannot be used: {error.strerror}") from None
    if not existing.is_dir():
        raise ValueError(f"{shown} lies below a file ({existing})")
    to_create = target.relative_to(existing).parts
    longest = os.pathconf(existing, "PC_NAME_MAX")
    too_long = [part for part in to_create if len(os.fsencode(part)) > longest]
    if too_long:
        raise ValueError(f"{shown} cannot be created: the name {too_long[0][:40]!r}... has "
                         f"{len(os.fsencode(too_long[0]))} bytes, more than the {longest} this file system allows")
    if len(os.fsencode(str(target))) >= os.pathconf(existing, "PC_PATH_MAX"):
        raise ValueError(f"{shown} cannot be created: the path is longer than this file system allows")
    _try_writing(existing, shown)


def _try_writing(folder: Path, shown: str) -> None:
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lrf-probe-", dir=folder))
    except OSError as error:
        raise ValueError(f"{shown} cannot be written: {folder} is not writable ({error.strerror})") from None


class OutputClaim:
    """An output folder claimed by this run: made (or found empty) and marked with a claim file
    created with ``O_EXCL``, so two runs never write into one folder; see :func:`claim_output`.

    :meth:`release` undoes the claim of a run that failed (what the run wrote, the claim, the
    folders it made, if empty); :meth:`complete` keeps the folder and drops the claim file
    once the run has written its last file.
    """

    def __init__(self, folder: Path, claim: Path, made: list[Path]):
        self.folder, self.claim, self.made = folder, claim, made

    def complete(self) -> None:
        self.claim.unlink(missing_ok=True)

    def release(self, written: tuple[str, ...] = ()) -> None:
        for name in written:
            (self.folder / name).unlink(missing_ok=True)
        self.claim.unlink(missing_ok=True)
        _remove_empty(self.made)


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders a claim made, deepest first, as long as they are empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:  # filled by someone else meanwhile: it stays
            break


CLAIM_FILE = ".lrf-claim"  # in a folder being written; the folder is complete when the summary is there


def claim_output(path: str | os.PathLike, name: str = "out") -> OutputClaim:
    """Claim ``path`` as this run's output folder, atomically, before any work starts.

    The folder is created (with missing parents) or must exist empty; then a claim file is
    created in it with ``O_CREAT | O_EXCL``, which exactly one of several runs started at once
    can do. The claim file names the run (host, PID, time) for a person who finds it.

    Raises:
        ValueError: naming ``name`` and the path: it is a file, lies below a file, cannot be
            created or written (read-only, no permission, a name too long), is not empty, or
            is being written by another run.
    """
    import socket

    shown = f"{name}={str(path)!r}"
    folder = Path(path).expanduser().absolute()
    made: list[Path] = []
    try:
        for ancestor in [*reversed(folder.parents), folder]:
            if not ancestor.exists():
                try:
                    ancestor.mkdir()
                    made.append(ancestor)
                except FileExistsError:  # made by another run just now: fine if a folder
                    pass
            if not ancestor.is_dir():
                where = "is a file" if ancestor == folder else f"lies below a file ({ancestor})"
                raise ValueError(f"{shown} {where}: it must be a new or empty folder")
        claim = folder / CLAIM_FILE
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise ValueError(f"{shown} is being written by another run, or was by one that was killed "
                             f"(its claim {claim}: {_read_claim(claim)}): each run needs a folder of its own") from None
    except OSError as error:  # read-only, permission, name too long, below a file (ENOTDIR)
        _remove_empty(made)
        raise ValueError(f"{shown} cannot be created: {error.strerror}") from None
    except ValueError:
        _remove_empty(made)  # never the claim file: it is another run's
        raise
    with os.fdopen(fd, "w") as handle:
        handle.write(f"host {socket.gethostname()} pid {os.getpid()} since "
                     f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}\n")
    result = OutputClaim(folder, claim, made)
    others = sorted(p.name for p in folder.iterdir() if p.name != CLAIM_FILE)
    if others:
        result.release()
        raise ValueError(f"{shown} exists and is not an empty folder (it holds {others[0]}"
                         f"{' and more' if len(others) > 1 else ''}): each run gets its own")
    return result


def _read_claim(claim: Path) -> str:
    try:
        return claim.read_text().strip() or "still being written"
    except OSError:
        return "unreadable"


def new_run_folders(root: str | os.PathLike) -> RunFolders:
    """A new run folder under ``root``, and the root's work cache (created if missing)."""
    run_dir = new_run_dir(root)
    cache_dir = run_dir.parent / CACHE_DIR
    cache_dir.mkdir(exist_ok=True)
    return RunFolders(str(run_dir), str(cache_dir))


def run_folder_name(prefix: str = "run") -> str:
    """``PREFIX-YYYYmmdd-HHMMSS-XXXXXX`` (UTC, and 6 random hex digits): the name of every
    run's folder, the flow's (``run-``) and ``lrf find``'s (``find-``)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


def new_run_dir(root: str | os.PathLike, prefix: str = "run") -> Path:
    """Create and return ``root/PREFIX-YYYYmmdd-HHMMSS-XXXXXX``, a folder nobody else has.

    ``mkdir`` without ``exist_ok`` is atomic, so two runs started in the same second
    on the same root still get two folders.
    """
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / run_folder_name(prefix)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
