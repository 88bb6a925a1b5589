"""The sweep result: a frozen record that round-trips through CSV and JSON exactly.

CSV layout (one vocabulary with the code and the docs)::

    # lrf-sweep {"version": 1, "stop_reason": "diverged", "config": {...}}
    iteration,lr,loss,smoothed_loss
    0,1e-06,2.3051,2.3051

Floats are written with ``repr`` so reading them back gives the same bits;
in JSON, non-finite values are the strings "NaN", "Infinity", "-Infinity" so the
file stays strict JSON any program can parse.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrf import _io
from lrf.config import SweepConfig
from lrf.stopping import StopReason

if TYPE_CHECKING:  # the core does not import pandas unless asked for a DataFrame
    import pandas

FORMAT = "lrf-sweep"
VERSION = 1
COLUMNS = ("iteration", "lr", "loss", "smoothed_loss")


@dataclass(frozen=True)
class SweepResult:
    """What a sweep recorded, why it stopped and how it was configured.

    Attributes:
        lrs: the rate of every iteration, in order.
        losses: the raw batch loss of every iteration.
        smoothed: the criterion's smoothed loss (NaN where the loss was not finite).
        stop_reason: why the sweep ended.
        config: the :class:`lrf.config.SweepConfig` that produced it.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    stop_reason: StopReason
    config: SweepConfig

    def __post_init__(self) -> None:
        for name in ("lrs", "losses", "smoothed"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not len(self.lrs) == len(self.losses) == len(self.smoothed):
            raise ValueError(
                f"lrs, losses and smoothed must have one value per iteration, got lengths "
                f"{len(self.lrs)}, {len(self.losses)}, {len(self.smoothed)}"
            )
        object.__setattr__(self, "stop_reason", StopReason(self.stop_reason))

    def __len__(self) -> int:
        return len(self.lrs)

    # --- pandas -------------------------------------------------------------------
    def to_dataframe(self) -> "pandas.DataFrame":
        """Columns iteration, lr, loss, smoothed_loss; stop reason and config in ``.attrs``."""
        import pandas

        frame = pandas.DataFrame(
            {"iteration": range(len(self)), "lr": self.lrs, "loss": self.losses, "smoothed_loss": self.smoothed}
        )
        frame.attrs.update(self._meta())
        return frame

    # --- CSV ----------------------------------------------------------------------
    def to_csv(self) -> str:
        buffer = io.StringIO()
        buffer.write(f"# {FORMAT} {json.dumps(self._meta(), sort_keys=True)}\n")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i, row in enumerate(zip(self.lrs, self.losses, self.smoothed)):
            writer.writerow([i, *map(repr, row)])
        return buffer.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> "SweepResult":
        """Read :meth:`to_csv`'s text back. Raises ValueError naming the line of anything
        missing or malformed (header, columns, a cell)."""
        lines = text.splitlines()
        if not lines or not lines[0].startswith(f"# {FORMAT} "):
            raise ValueError(f"not an lrf sweep CSV: the first line must start with '# {FORMAT} '")
        meta = _parse_meta(lines[0][len(FORMAT) + 3 :], "the CSV's first line")
        rows = list(csv.reader(lines[1:]))
        if not rows or tuple(rows[0]) != COLUMNS:
            raise ValueError(f"lrf sweep CSV must have the columns {','.join(COLUMNS)}")
        values = []
        for number, row in enumerate(rows[1:], start=3):
            if len(row) != len(COLUMNS):
                raise ValueError(f"lrf sweep CSV line {number} has {len(row)} cells, expected {len(COLUMNS)} "
                                 f"({','.join(COLUMNS)}): {','.join(row)!r}")
            if row[0] != str(number - 3):
                raise ValueError(f"lrf sweep CSV line {number} is iteration {row[0]!r}, expected {number - 3}")
            values.append(tuple(_number(cell, f"line {number} column {name}") for name, cell in zip(COLUMNS[1:], row[1:])))
        columns = list(zip(*values)) or [(), (), ()]
        return cls._from_meta(meta, *columns)

    # --- JSON ---------------------------------------------------------------------
    def to_json(self) -> str:
        points = {
            "lr": [_io.json_float(v) for v in self.lrs],
            "loss": [_io.json_float(v) for v in self.losses],
            "smoothed_loss": [_io.json_float(v) for v in self.smoothed],
        }
        return json.dumps({**self._meta(), "points": points}, allow_nan=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SweepResult":
        """Read :meth:`to_json`'s text back (other keys are ignored: a cached sweep carries a
        header of its own). Raises ValueError for anything missing or malformed."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an lrf sweep JSON: format={data.get('format') if isinstance(data, dict) else None!r}")
        points = data.get("points")
        if not isinstance(points, dict) or any(not isinstance(points.get(key), list) for key in COLUMNS[1:]):
            raise ValueError(f"lrf sweep JSON must have points with the lists {', '.join(COLUMNS[1:])}")
        columns = [tuple(_number(v, f"points.{key}[{i}]") for i, v in enumerate(points[key])) for key in COLUMNS[1:]]
        return cls._from_meta(data, *columns)

    # --- files --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as CSV or JSON, chosen by the suffix (``.csv`` / ``.json``)."""
        text = self.to_json() if Path(path).suffix == ".json" else self.to_csv()
        return _io.write_text(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SweepResult":
        """Read a file :meth:`save` wrote (JSON if the suffix is ``.json``, else CSV).

        Raises:
            ValueError: the file is not a whole, well-formed sweep (not text, not JSON, a
                missing header, cell or column...): one line that names the file and what is
                wrong in it.
            OSError: the file cannot be read (missing, a folder, no permission).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            return cls.from_json(text) if path.suffix == ".json" else cls.from_csv(text)
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not an lrf sweep file: not UTF-8 text ({error.reason} at byte "
                             f"{error.start})") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not an lrf sweep file: not whole JSON ({error})") from None
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    # --- helpers ------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "stop_reason": self.stop_reason.value, "config": self.config.to_dict()}

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], lrs, losses, smoothed) -> "SweepResult":
        if meta.get("version") != VERSION:
            raise ValueError(f"unsupported lrf sweep version {meta.get('version')!r} (this lrf reads {VERSION})")
        missing = [key for key in ("stop_reason", "config") if key not in meta]
        if missing:
            raise ValueError(f"lrf sweep file lacks {' and '.join(missing)} in its header")
        if not isinstance(meta["config"], dict):
            raise ValueError(f"lrf sweep file has config={meta['config']!r}, expected the sweep's settings")
        try:
            config = SweepConfig.from_dict(meta["config"])
        except TypeError as error:  # unknown or missing settings
            raise ValueError(f"lrf sweep file has an invalid config: {error}") from None
        reasons = [reason.value for reason in StopReason]
        if meta["stop_reason"] not in reasons:
            raise ValueError(f"lrf sweep file has stop_reason={meta['stop_reason']!r}, expected one of "
                             f"{', '.join(reasons)}")
        return cls(lrs, losses, smoothed, StopReason(meta["stop_reason"]), config)


def _parse_meta(text: str, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except ValueError as error:
        raise ValueError(f"lrf sweep file: {where} is not a JSON header ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"lrf sweep file: {where} is not a JSON object")
    return meta


def _number(value: Any, where: str) -> float:
    """A float from a CSV cell or a JSON value (numbers, or "NaN"/"Infinity"/"-Infinity")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"lrf sweep file: {where} is {value!r}, not a number")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"lrf sweep file: {where} is {value!r}, not a number") from None
