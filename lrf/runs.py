"""Run folders: one per run under an output root, never shared, never reused."""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

COMPLETE_MARKER = "summary.json"  # written last: a folder with it is complete


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
