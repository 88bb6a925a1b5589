"""Start a process as a terminal would, for tests that press Ctrl-C.

A non-interactive shell starts background commands with SIGINT ignored (POSIX), and a
process that starts with SIGINT ignored keeps ignoring it: Python then installs no
KeyboardInterrupt handler. A suite launched from a script in the background (``cmd &``)
would thus test a deaf process. Children started with :func:`sigint_as_in_a_terminal`
get SIGINT's default back, as a command typed at a terminal has it.
"""

from __future__ import annotations

import signal


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for :class:`subprocess.Popen`: SIGINT at its default in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
