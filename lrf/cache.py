"""The work cache: one owner for its keys, file names, work records, verification and setting aside.

Finished work (initial parameters, sweeps, candidate trainings) is kept in
``output_root/cache/`` and reused by any run that asks for the same work. One
identity per piece of work: its *work record* (the job and every input that
determines its numbers: the setup's fields, the data's fingerprint
(:func:`lrf.datasets.data_fingerprint`), the SHA-256 of the parameters it starts
from, rate, iterations, ...; :func:`init_work`, :func:`sweep_work`,
:func:`candidate_work`). Its file name is ``JOB-KEY.json`` (or ``.params``), KEY a hash
of that record (:meth:`WorkCache.file_for`), and the file records it too, with a
SHA-256 of its own content; a parameters file has a sidecar ``NAME.json`` with the
same, written before the parameters are renamed into place (so parameters without
a sidecar were never finished by this lrf).

A reader (:func:`read_or_compute`) compares the recorded work with the work asked
for, and the digests with the bytes; a file that fails is renamed aside
(``NAME.corrupt-TIMESTAMP``, kept for a person to look at), a warning names it, and
the work is done again. Nothing unverifiable is ever used.

Framework-free: the checks run in the orchestrating process, before a job starts.

>>> work = {"job": "sweep", "lr": 0.1}
>>> text = stamp('{"losses": [2.3]}', work)
>>> checked_json_text(text, work)["losses"]
[2.3]
>>> WorkCache("cache").file_for(work, ".json").name == f"sweep-{work_key(work)}.json"
True
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
import logging
from typing import Any, Callable

from lrf import _io

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when a change to lrf makes cached work wrong (3: a file is named by its work record)
PARAMS_FORMAT = "lrf-cache-params"
SET_ASIDE = "corrupt"  # a file that failed verification becomes NAME.corrupt-TIMESTAMP


class Unusable(ValueError):
    """A cached file that must not be used; the message says why."""


# --- the work and where its result lives ---------------------------------------------


def work_key(*parts) -> str:
    """A short name for a piece of work: a hash of everything that determines it.

    >>> work_key({"model": "small-cnn"}, 0.1) == work_key({"model": "small-cnn"}, 0.1)
    True
    """
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def work_fields(setup) -> dict:
    """What of a :class:`lrf.config.Setup` determines a job's numbers, the data's content
    included (its fingerprint): for work records. Computed without a framework."""
    from lrf.datasets import data_fingerprint
    from lrf.recipe import recipe_fingerprint

    if setup.recipe is not None:  # the recipe's code and declared data, not the unused data setting
        return {**setup.cache_fields(), "recipe_fingerprint": recipe_fingerprint(setup.recipe)}
    return {**setup.cache_fields(), "data_fingerprint": data_fingerprint(setup.data_spec)}


def init_work(setup) -> dict:
    """The work of initialising ``setup``'s model."""
    return {"job": "init", "setup": work_fields(setup)}


def sweep_work(setup, config, init_params: str | os.PathLike) -> dict:
    """The work of a sweep with ``config`` (a :class:`lrf.config.SweepConfig`) from ``init_params``."""
    return {"job": "sweep", "setup": work_fields(setup), "config": config.to_dict(),
            "init_params": sha256_or_none(init_params)}


def candidate_work(setup, init_params: str | os.PathLike, lr: float, iterations: int, last_k: int,
                   start: int = 0, resume_from: str | os.PathLike | None = None, saves_state: bool = False) -> dict:
    """The work of training ``lr`` for ``iterations`` from ``init_params`` (or on from
    ``resume_from``, a state at iteration ``start``), saving its state at the end if ``saves_state``."""
    return {"job": "candidate", "setup": work_fields(setup), "init_params": sha256_or_none(init_params),
            "lr": lr, "iterations": iterations, "last_k": last_k, "start": start,
            "resume_from": None if resume_from is None else sha256_or_none(resume_from),
            "saves_state": saves_state}


def sha256_or_none(path: str | os.PathLike):
    """A file's SHA-256 for a work record; None if it is missing (the job then fails, naming it)."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


class WorkCache:
    """The work cache folder (``output_root/cache``): where each piece of work's result lives.

    >>> cache = WorkCache("/tmp/c")
    >>> cache.state_file_for({"job": "candidate"}).name.startswith("state-")
    True
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def file_for(self, work: dict, suffix: str) -> Path:
        """``JOB-KEY{suffix}``: the result of ``work``, named by its work record."""
        return self.folder / f"{work['job']}-{work_key(work)}{suffix}"

    def state_file_for(self, work: dict) -> Path:
        """Where a training that goes on later keeps its state: ``state-KEY.params``."""
        return self.folder / f"state-{work_key(work)}.params"

    def copy_in(self, source: str | os.PathLike, prefix: str = "init-given") -> Path:
        """``source`` copied in as ``PREFIX-KEY.params``, KEY the start of its SHA-256: work
        from it is keyed by the file's content (an edited file is other work), and the run
        uses a copy that a later edit of ``source`` cannot reach. A copy already there with
        the same SHA-256 is used as it is."""
        digest = file_sha256(source)
        target = self.folder / f"{prefix}-{digest[:16]}.params"
        if not (target.is_file() and file_sha256(target) == digest):
            _io.copy_file(source, target)
        return target


def read_or_compute(job: str, out: Path, read: Callable[[Path], Any], compute: Callable[[], None], *,
                    recompute: bool = False, report: Callable[[str], None] = log.info,
                    reused: Callable[[Path], None] | None = None) -> Any:
    """``read(out)`` if ``out`` exists and verifies (and not ``recompute``); else (a failing
    ``out`` set aside first, with a warning naming it) ``compute()``, which writes ``out``,
    and ``read(out)``.

    Raises:
        RuntimeError: what ``compute`` wrote does not verify (naming the job and the file).
    """
    if out.is_file() and not recompute:
        seen = out.stat()
        try:
            result = read(out)
        except Exception as error:  # fail closed: whatever does not read back is not used
            aside = set_aside(out, seen)
            message = (f"{job}: cached {out} cannot be used: {error}; "
                       + (f"set aside as {aside.name}; " if aside else "") + "computing it again")
            log.warning(message)
            report(f"warning: {message}")
        else:
            report(f"{job}: reusing {out}")
            if reused is not None:
                reused(out)
            return result
    compute()
    try:
        return read(out)
    except Exception as error:
        raise RuntimeError(f"lrf job {job!r} wrote {out}, which does not verify: {error}") from None


# --- JSON results --------------------------------------------------------------------


def stamp(text: str, work: dict, outputs: dict | None = None) -> str:
    """A result's JSON ``text`` with its ``work`` (and ``outputs``: digests of files written
    beside it) recorded, and a SHA-256 of the whole."""
    data = json.loads(text)
    data["work"] = _plain(work)
    if outputs:
        data["outputs"] = _plain(outputs)
    data["sha256"] = _digest(data)
    return _io.to_json(data)


def checked_json_text(text: str, work: dict) -> dict:
    """The parsed result if ``text`` is whole, unedited and records ``work``; raise
    :class:`Unusable` (or another ValueError) otherwise."""
    data = json.loads(text)
    if not isinstance(data, dict) or "work" not in data or "sha256" not in data:
        raise Unusable("it records no work header (written by an older lrf, or not by lrf)")
    recorded = data.pop("sha256")
    if recorded != _digest(data):
        raise Unusable("its content does not match its recorded SHA-256 (edited or damaged)")
    difference = _difference(data["work"], _plain(work))
    if difference:
        raise Unusable(f"it holds other work: {difference}")
    return data


def read_checked_json(path: str | os.PathLike, work: dict) -> tuple[str, dict]:
    """(text, parsed result) of a cached result file, checked by :func:`checked_json_text`."""
    text = Path(path).read_text(encoding="utf-8")
    return text, checked_json_text(text, work)


# --- parameter files -----------------------------------------------------------------


def sidecar(path: str | os.PathLike) -> Path:
    """Where the record of a parameters file's work is kept: ``NAME.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | os.PathLike, written: str | os.PathLike, work: dict) -> Path:
    """Record ``work`` and the digest of ``written`` (the finished file, not yet renamed to
    ``path``) in ``path``'s sidecar. Call it before the rename: a parameters file that is in
    place then always has its record."""
    record = {"format": PARAMS_FORMAT, "version": 1, "work": _plain(work), "size": os.path.getsize(written),
              "sha256": _file_digest(str(written))}
    return _io.write_text(sidecar(path), _io.to_json(record))


def check_params(path: str | os.PathLike, work: dict) -> Path:
    """``path`` if it is the whole file its sidecar describes, made by ``work``; raise
    :class:`Unusable` (or another ValueError) otherwise."""
    path, record_path = Path(path), sidecar(path)
    if not record_path.is_file():
        raise Unusable(f"it has no record {record_path.name} of the work it holds (written by an older lrf, "
                       "or killed before it was finished)")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or record.get("format") != PARAMS_FORMAT or "work" not in record:
        raise Unusable(f"its record {record_path.name} is not an lrf parameters record")
    difference = _difference(record["work"], _plain(work))
    if difference:
        raise Unusable(f"it holds other work: {difference}")
    size = path.stat().st_size
    if size != record.get("size"):
        raise Unusable(f"it has {size} bytes, its record {record_path.name} says {record.get('size')} (truncated?)")
    if file_sha256(path) != record.get("sha256"):
        raise Unusable(f"its content does not match the SHA-256 in {record_path.name} (damaged or replaced)")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; remembered per version of the file (inode, size, mtime and
    ctime: any write changes one of them), so a flow that hashes the same initial
    parameters for every candidate reads them once."""
    stat = os.stat(path)
    return _file_digest(os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, *version) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- setting aside -------------------------------------------------------------------


def set_aside(path: str | os.PathLike, seen: os.stat_result | None = None) -> Path | None:
    """Rename ``path`` (and its sidecar, if any) to ``NAME.corrupt-TIMESTAMP``; return the new
    path, or None if the file is gone or was replaced since it was ``seen`` (another run got
    there first: what is there now is not the file that failed)."""
    path = Path(path)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return None
    if seen is not None and (now.st_ino, now.st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):
        return None
    stamp_ = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    number = 0
    while True:
        suffix = f".{SET_ASIDE}-{stamp_}" + (f"-{number}" if number else "")
        target = path.with_name(path.name + suffix)
        if not target.exists():
            break
        number += 1
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    record = sidecar(path)
    if path.suffix == ".params" and record.is_file():
        os.replace(record, record.with_name(record.name + suffix))
    return target


# --- helpers -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), so that recorded and asked
    work compare equal when they are."""
    return json.loads(json.dumps(value, allow_nan=False))


def _digest(data: dict) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _difference(recorded: Any, asked: Any) -> str | None:
    """None if equal, else the first few fields that differ, recorded against asked.

    >>> _difference({"lr": 1.99, "job": "candidate"}, {"lr": 0.0199, "job": "candidate"})
    'lr=1.99, this run asks for lr=0.0199'
    """
    mine, theirs = dict(_flat(recorded)), dict(_flat(asked))
    keys = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k, _MISSING) != theirs.get(k, _MISSING))
    if not keys:
        return None

    def show(values: dict) -> str:
        return ", ".join(f"{k}={_short(values.get(k, _MISSING))}" for k in keys[:3]) + (", ..." if len(keys) > 3 else "")

    return f"{show(mine)}, this run asks for {show(theirs)}"


_MISSING = "(missing)"


def _flat(value: Any, prefix: str = ""):
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flat(item, f"{prefix}{key}.")
    else:
        yield prefix[:-1] or "(all)", value


def _short(value: Any) -> str:
    text = value if value is _MISSING else repr(value)
    return text if len(text) <= 24 else text[:21] + "..."
