"""SIGTERM as an exception, for lrf's own entry points (never installed by the library).

By default SIGTERM ends a Python process on the spot: no ``finally`` runs, so a
sweep would not restore its model and temporary files would stay behind. The
CLI and the job processes turn it into ``SystemExit(143)`` instead, which
unwinds like Ctrl-C does.
"""

from __future__ import annotations

import signal
import threading

TERMINATED = 128 + signal.SIGTERM


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(143)`` in the main thread of this process
    (a no-op when called from another thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise SystemExit(TERMINATED)

    signal.signal(signal.SIGTERM, handler)
