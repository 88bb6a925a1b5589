"""The history of an output root: one row per completed flow run, and what moved.

A scheduled finder is there to notice when the right rate changes (new data, a changed
network, augmentation or optimizer setting). Every completed run appends one row to
``OUTPUT_ROOT/history.csv``: when, which flow run and deployment, the set-up (engine,
data and its fingerprint, model or recipe, optimizer, batch size), the sweep's pick(s)
and spread, the recommended rate and the measure that decided, held-out accuracy, the
compute spent and the run folder (relative to the output root). ``setup_key`` names
everything but the data's content that decides the answer, so "the same set-up on
changed data" is a row with the same key and another fingerprint.

Trust: each row carries the SHA-256 of its own fields, and the file's header names the
columns of this format. A history that is truncated, edited by hand or written by
another version does not verify; :func:`append` sets it aside (``history.csv.corrupt-
TIMESTAMP``, with a warning naming it, as the cache does) and starts a new one: a run
never fails for its history. Appends hold a lock and replace the file atomically, so two
runs finishing at once both get their row and a reader never sees half a file.

Framework-free: plain CSV through the standard library.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from lrf import _io

log = logging.getLogger(__name__)

HISTORY_FILE = "history.csv"
DRIFT_PLOT = "history.png"
FORMAT = "lrf-history/1"
#: a recommendation that moves by more than this factor from the last run of the same
#: set-up has changed. One sweep's pick lies up to 2.14x from the median of five on
#: unchanged data (``benchmarks --only spread``, docs/answer.md); 3 sits above every spread
#: measured, as ``spread_threshold`` does.
CHANGE_FACTOR = 3.0

COLUMNS = ("format", "time", "flow_run_id", "flow_run_name", "deployment", "engine", "data", "data_fingerprint",
           "model", "recipe", "optimizer", "optimizer_params", "batch_size", "setup_key", "pick_lr", "picks",
           "spread", "recommended_lr", "measure", "measure_value", "holdout_accuracy", "sweep_iterations",
           "candidate_iterations", "run_dir", "row_sha256")
FLOATS = ("pick_lr", "spread", "recommended_lr", "measure_value", "holdout_accuracy")
INTS = ("batch_size", "sweep_iterations", "candidate_iterations")


class UnusableHistory(ValueError):
    """The history file does not verify; the message says where and why."""


@dataclass(frozen=True)
class Change:
    """What moved between the last run of a set-up and this one; ``reason`` says it in words."""

    previous_lr: float | None
    lr: float | None
    reason: str
    previous_run: str

    def to_dict(self) -> dict:
        return {"previous_lr": self.previous_lr, "lr": self.lr, "reason": self.reason,
                "previous_run": self.previous_run}


def history_row(summary: dict, *, fingerprint: "str | dict", run_dir: str, flow_run_id: str = "", flow_run_name: str = "",
                deployment: str = "", time: datetime | None = None) -> dict[str, Any]:
    """The row of one completed run, from its ``summary`` (``lrf.report.write_report``) and
    the data's (or recipe's) ``fingerprint`` (a digest, or a record of what identifies a
    built-in data set, which is hashed); ``run_dir`` relative to the output root."""
    if not isinstance(fingerprint, str):
        fingerprint = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=repr).encode()).hexdigest()
    setup = summary["setup"]
    recommendation = summary["recommendation"]
    chosen = next((row for row in summary["final_losses"] if row["recommended"]), {})
    identity = {k: v for k, v in setup.items() if k not in ("loader_workers",)}
    setup_key = hashlib.sha256(json.dumps([identity, summary["sweep"]["config"], summary["plan"]], sort_keys=True,
                                          default=repr).encode()).hexdigest()[:16]
    row = {
        "format": FORMAT,
        "time": (time or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "flow_run_id": flow_run_id, "flow_run_name": flow_run_name, "deployment": deployment,
        "engine": setup.get("engine"), "data": setup.get("data"), "data_fingerprint": fingerprint,
        "model": setup.get("model"), "recipe": setup.get("recipe"), "optimizer": setup.get("optimizer"),
        "optimizer_params": json.dumps(setup.get("optimizer_params") or {}, sort_keys=True),
        "batch_size": setup.get("batch_size"), "setup_key": setup_key,
        "pick_lr": summary["pick_lr"], "picks": json.dumps(summary["sweeps"]["picks"]),
        "spread": summary["sweeps"]["spread"], "recommended_lr": summary["recommended_lr"],
        "measure": recommendation.get("measure"), "measure_value": recommendation.get("value"),
        "holdout_accuracy": chosen.get("holdout_accuracy"),
        "sweep_iterations": summary["compute"]["sweep_iterations"],
        "candidate_iterations": summary["compute"]["candidate_iterations"],
        "run_dir": run_dir,
    }
    return _checked(_normalised(row))


def read_history(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``root``'s history, oldest first; [] if it has none. Raises
    :class:`UnusableHistory` naming the file and what is wrong with it."""
    path = Path(root).expanduser() / HISTORY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise UnusableHistory(f"history {path} cannot be read: {error}") from None
    return _parse(text, path)


def append(root: str | os.PathLike, row: dict[str, Any]) -> tuple[list[dict[str, Any]], Path | None]:
    """Append ``row`` to ``root``'s history; return every row (``row`` last) and where an
    unusable history was set aside (None if it was sound). Never raises for the history's
    content: an unusable one is set aside with a warning naming it, and a new one begun."""
    from lrf.cache import set_aside

    root = Path(root).expanduser()
    path = root / HISTORY_FILE
    aside = None
    with _locked(root / f".{HISTORY_FILE}.lock"):
        try:
            rows = read_history(root)
        except UnusableHistory as error:
            aside = set_aside(path)
            log.warning("%s; set aside as %s, a new history begins with this run", error, aside)
            rows = []
        rows = [*rows, row]
        _io.write_text(path, as_csv(rows))
    return rows, aside


def change(rows: Sequence[dict[str, Any]], factor: float = CHANGE_FACTOR) -> Change | None:
    """How the last row differs from the row before it of the same set-up: its data's
    fingerprint changed, or its recommended rate moved by more than ``factor`` (or appeared
    or vanished); None if nothing moved or there is no earlier run of that set-up."""
    if not rows:
        return None
    last = rows[-1]
    earlier = [r for r in rows[:-1] if r["setup_key"] == last["setup_key"]]
    if not earlier:
        return None
    previous = earlier[-1]
    before, now = previous["recommended_lr"], last["recommended_lr"]
    if previous["data_fingerprint"] != last["data_fingerprint"]:
        reason = (f"the data changed (fingerprint {previous['data_fingerprint'][:12]} -> "
                  f"{last['data_fingerprint'][:12]})")
    elif (before is None) != (now is None):
        reason = "a recommendation " + ("appeared" if before is None else "vanished")
    elif before is not None and max(now / before, before / now) > factor:
        reason = f"the recommended rate moved {max(now / before, before / now):.3g}x (more than {factor:g}x)"
    else:
        return None
    return Change(before, now, reason, previous["run_dir"])


def as_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The history as a Markdown table, oldest first."""
    lines = ["| time | recommended | pick | spread | measure | value | data | set-up | run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["time"], _g(r["recommended_lr"]), _g(r["pick_lr"]), _g(r["spread"]), r["measure"] or "-",
            _g(r["measure_value"]), r["data_fingerprint"][:12], r["setup_key"][:12], r["run_dir"]]) + " |")
    return "\n".join(lines) + "\n"


def artifact_key(setup_key: str) -> str:
    """A Prefect artifact key for one set-up's history (lowercase letters, digits, dashes)."""
    return f"lr-finder-history-{setup_key[:12]}"


# --- helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as reading it back gives it: floats and ints typed, None for empty."""
    out = {}
    for name in COLUMNS[:-1]:
        value = row.get(name)
        if name in FLOATS:
            value = None if value in (None, "") else float(value)
        elif name in INTS:
            value = None if value in (None, "") else int(value)
        else:
            value = None if value in (None, "") else str(value)
        out[name] = value
    return out


def _text(value: Any) -> str:
    return "" if value is None else (repr(value) if isinstance(value, float) else str(value))


def _digest(row: dict[str, Any]) -> str:
    return hashlib.sha256("\x1f".join(_text(row[name]) for name in COLUMNS[:-1]).encode()).hexdigest()


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "row_sha256": _digest(row)}


def as_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The history as its file holds it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_text(row[name]) for name in COLUMNS])
    return buffer.getvalue()


def _parse(text: str, path: Path) -> list[dict[str, Any]]:
    if not text.endswith("\n"):
        raise UnusableHistory(f"history {path} is truncated (its last line is cut)")
    lines = list(csv.reader(io.StringIO(text)))
    if not lines or tuple(lines[0]) != COLUMNS:
        raise UnusableHistory(f"history {path} is not of this lrf's format {FORMAT!r} (its header differs)")
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(COLUMNS):
            raise UnusableHistory(f"history {path} line {number} has {len(fields)} fields, not {len(COLUMNS)}")
        raw = dict(zip(COLUMNS, fields))
        if raw["format"] != FORMAT:
            raise UnusableHistory(f"history {path} line {number} is of format {raw['format']!r}, not {FORMAT!r}")
        try:
            row = _normalised({k: (v if v != "" else None) for k, v in raw.items()})
        except ValueError as error:
            raise UnusableHistory(f"history {path} line {number} does not read: {error}") from None
        if _digest(row) != raw["row_sha256"]:
            raise UnusableHistory(f"history {path} line {number} does not match its recorded SHA-256 "
                                  f"(edited or damaged)")
        rows.append({**row, "row_sha256": raw["row_sha256"]})
    return rows


def _g(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
