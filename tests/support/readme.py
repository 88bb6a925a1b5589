"""Commands as the README writes them, read at test time, so a test runs what a reader would."""

from __future__ import annotations

import re
from pathlib import Path

_FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def section(text: str, heading: str) -> str:
    """The part of a Markdown ``text`` under ``heading`` (a whole line, e.g. "## Tests"), up to
    the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading) + 1
    except StopIteration:
        raise ValueError(f"no heading {heading!r} in the README") from None
    end = next((i for i in range(start, len(lines))
                if re.match(rf"^#{{1,{level}}} ", lines[i]) and not _in_fence(lines[:i])), len(lines))
    return "".join(lines[start:end])


def _in_fence(lines: list[str]) -> bool:
    return sum(line.startswith("```") for line in lines) % 2 == 1


def shell_commands(readme: str | Path, heading: str) -> list[list[str]]:
    """The commands of each ```bash block under ``heading``, block by block: one string per
    command, comments and blank lines dropped, lines continued with a backslash joined."""
    blocks = []
    for body in _FENCE.findall(section(Path(readme).read_text(encoding="utf-8"), heading)):
        commands, pending = [], ""
        for line in body.splitlines():
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            commands.append(pending + stripped)
            pending = ""
        blocks.append(commands)
    return blocks
