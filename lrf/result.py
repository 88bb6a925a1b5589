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
        lines = text.splitlines()
        if not lines or not lines[0].startswith(f"# {FORMAT} "):
            raise ValueError(f"not an lrf sweep CSV: the first line must start with '# {FORMAT} '")
        meta = json.loads(lines[0][len(FORMAT) + 3 :])
        rows = list(csv.reader(lines[1:]))
        if not rows or tuple(rows[0]) != COLUMNS:
            raise ValueError(f"lrf sweep CSV must have the columns {','.join(COLUMNS)}")
        columns = list(zip(*rows[1:])) or [(), (), (), ()]
        return cls._from_meta(meta, *(tuple(map(float, column)) for column in columns[1:]))

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
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"not an lrf sweep JSON: format={data.get('format')!r}")
        points = data["points"]
        return cls._from_meta(data, *(tuple(float(v) for v in points[key]) for key in COLUMNS[1:]))

    # --- files --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as CSV or JSON, chosen by the suffix (``.csv`` / ``.json``)."""
        text = self.to_json() if Path(path).suffix == ".json" else self.to_csv()
        return _io.write_text(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SweepResult":
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(text) if Path(path).suffix == ".json" else cls.from_csv(text)

    # --- helpers ------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "stop_reason": self.stop_reason.value, "config": self.config.to_dict()}

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], lrs, losses, smoothed) -> "SweepResult":
        if meta.get("version") != VERSION:
            raise ValueError(f"unsupported lrf sweep version {meta.get('version')!r} (this lrf reads {VERSION})")
        return cls(lrs, losses, smoothed, StopReason(meta["stop_reason"]), SweepConfig.from_dict(meta["config"]))
