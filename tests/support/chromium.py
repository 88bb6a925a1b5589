"""Headless Chromium for tests that look at the Prefect UI as a person would: Debian's
``chromium``, installed with apt-get if missing and we are root (the install step lives
here, not on one machine).

The UI is a JavaScript application: what a person sees is the DOM after its scripts ran,
which ``--dump-dom`` prints once ``--virtual-time-budget`` (virtual milliseconds: the
page's timers run fast, network waits are real) has passed; ``--screenshot`` draws it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.apt import apt_install

WINDOW = "1600,1200"
TIME_BUDGET_MS = 15000  # measured enough for a flow run's artifact pages on a loaded 2-core machine
TIMEOUT_S = 180


def chromium_binary() -> str:
    """The path of ``chromium``; installs Debian's package if needed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and apt_install("chromium"):
        found = shutil.which("chromium")
    if not found:
        raise RuntimeError("chromium not found; install Debian's chromium (apt-get install chromium)")
    return found


def _run(url: str, *args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW}",
               f"--virtual-time-budget={TIME_BUDGET_MS}", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def page_dom(url: str, profile: Path) -> str:
    """The page's DOM once its scripts have run (``--dump-dom``)."""
    return _run(url, "--dump-dom", profile=profile).stdout


def screenshot(url: str, path: Path, profile: Path) -> Path:
    """A PNG of the page as a 1600 x 1200 window shows it."""
    _run(url, f"--screenshot={path}", profile=profile)
    if not path.is_file() or path.read_bytes()[:4] != b"\x89PNG":
        raise RuntimeError(f"chromium wrote no PNG to {path}")
    return path
