"""SIGTERM as an exception, for lrf's own entry points (never installed by the library).

By default SIGTERM ends a Python process on the spot: no ``finally`` runs, so a
sweep would not restore its model and temporary files would stay behind. The
CLI and the job processes turn it into ``SystemExit(143)`` instead, which
unwinds like Ctrl-C does.

Only in the process that asked for it: forked children (the data loader's
workers) inherit the handler, and the loader stops its workers with SIGTERM.
A worker that raised SystemExit there could have it swallowed (inside an
``NDArray.__del__``, say) and keep running. So the handler resets SIGTERM to
its default in forked children. (Workers can still miss a SIGTERM while stuck
on the pool's queue lock: :func:`lrf.gluon.data.close_loader` therefore
SIGKILLs what has not stopped after a few seconds.)
"""

from __future__ import annotations

import os
import signal
import threading

TERMINATED = 128 + signal.SIGTERM


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(143)`` in the main thread of this process only
    (a no-op when called from another thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child that inherited the handler: die as by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise SystemExit(TERMINATED)

    signal.signal(signal.SIGTERM, handler)
    os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
