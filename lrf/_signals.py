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

The same swallowing can lose a Ctrl-C or a SIGTERM in the main process: Python
ignores an exception raised inside a ``__del__`` (MXNet's ``NDArray.__del__`` and
``SymbolBase.__del__`` run all the time), so a KeyboardInterrupt that lands there is
printed as "Exception ignored" and the run goes on. The entry points' handlers
therefore also *record* the signal (:func:`interrupt_on_sigint`,
:func:`exit_on_sigterm`), and the library's long loops call
:func:`raise_if_interrupted` once per iteration, which raises it again: a Ctrl-C
stops the run within one iteration wherever it landed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

TERMINATED = 128 + signal.SIGTERM
_received: list[int] = []  # the stop signals this process's own handlers were given
_stopping = threading.Event()  # set when a stop signal arrived, whoever's handler ran


def stopping() -> bool:
    """Whether this process was told to stop (SIGTERM or Ctrl-C), even where a framework's
    handler took the signal: work that fails now failed because of the stop, and must not be
    retried (a retry would only delay the end)."""
    return bool(_received) or _stopping.is_set()


def raise_if_interrupted() -> None:
    """Raise again a Ctrl-C (KeyboardInterrupt) or SIGTERM (``SystemExit(143)``) that this
    process was given and that may have been swallowed; nothing if none was (or the entry
    point installed no recording handler). For the library's loops, once per iteration."""
    if _received:
        if _received[-1] == signal.SIGTERM:
            raise SystemExit(TERMINATED)
        raise KeyboardInterrupt


def interrupt_on_sigint() -> None:
    """Make Ctrl-C raise KeyboardInterrupt as by default, and record it for
    :func:`raise_if_interrupted`: in the main thread of this process only, and only where
    SIGINT has Python's default handler (a SIGINT the shell ignores stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() == owner:
            _received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


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
        _received.append(signum)
        raise SystemExit(TERMINATED)

    signal.signal(signal.SIGTERM, handler)
    os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _received.clear()  # a forked child was given nothing yet
    _stopping.clear()


# --- a run that starts processes: none of them outlives it -----------------------------

STOP_GRACE_SECONDS = 10.0  # after SIGTERM/SIGINT: then whatever is left is killed, and the process exits
SPARED_GONE_SECONDS = 3.0  # ... or this long after the spared processes ended


@contextlib.contextmanager
def stop_started_processes(spare: Callable[[list[str]], bool] = lambda argv: False,
                           grace: float = STOP_GRACE_SECONDS) -> Iterator[None]:
    """Whatever this block starts (jobs, their workers, a server) ends with this process.

    On SIGTERM or SIGINT (Ctrl-C), whoever's Python handler runs then (a framework may hold
    SIGTERM for a while, as Prefect does while a flow runs), a watcher thread sends SIGTERM at
    once to every process this block started, directly or below those, except the ones
    ``spare(argv)`` keeps for the shutdown itself (a server the orchestrator reports the
    crash to), and again to any started later: the jobs stop while the main thread unwinds
    (SIGTERM raising ``SystemExit(143)``, see :func:`exit_on_sigterm`, Ctrl-C raising
    KeyboardInterrupt). If the process is still alive ``grace`` seconds after the signal, or
    :data:`SPARED_GONE_SECONDS` after the spared processes ended by themselves (a thread that
    waits for ever on work that is gone, or on a server that is gone), every process it
    started is killed, spared ones included, and it exits with status 128 + the signal.

    On any exit, the processes this block started that are still there when it ends
    are stopped when the interpreter exits, after the exit handlers registered later (a
    server stopped by its own exit handler is left to it).

    "Started by this block" means: a descendant (found in ``/proc``) that was not there when
    the block began. Linux only; elsewhere the block only installs the SIGTERM handler.
    Call from the main thread.
    """
    exit_on_sigterm()
    if threading.current_thread() is not threading.main_thread() or not os.path.isdir("/proc/self/task"):
        yield
        return
    before = set(_descendants())
    watcher = _Watcher(before, spare, grace)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=watcher.watch, args=(read_end, previous), name="lrf-stop-on-signal", daemon=True).start()
    atexit.register(watcher.stop_leftovers)  # before the block starts anything: runs after their exit handlers
    try:
        yield
    finally:
        watcher.leftovers = set(_descendants()) - before
        if watcher.signalled is None:  # the block ended by itself: stop watching
            signal.set_wakeup_fd(previous, warn_on_full_buffer=False)
            os.close(write_end)  # the watcher reads the end of the pipe and returns


class _Watcher:
    def __init__(self, before: set, spare: Callable[[list[str]], bool], grace: float):
        self.before, self.spare, self.grace = before, spare, grace
        self.signalled: int | None = None
        self.leftovers: set | None = None
        self.spared: set = set()  # spared processes seen while the block ran (a Ctrl-C may end them first)
        self.judged: set = set()

    def watch(self, read_end: int, previous: int) -> None:
        import select

        while self.signalled is None:
            if not select.select([read_end], [], [], 1.0)[0]:
                self.note_spared()
                continue
            try:
                data = os.read(read_end, 64)
            except OSError:
                data = b""
            if not data:  # the block ended without a signal
                os.close(read_end)
                return
            if previous != -1:  # the wake-up fd we replaced still hears of every signal
                try:
                    os.write(previous, data)
                except OSError:
                    pass
            for number in data:
                if number in (signal.SIGTERM, signal.SIGINT):
                    self.signalled = number
                    _stopping.set()
                    break
        self.stop_jobs()

    def started(self) -> list[tuple[int, str]]:
        return [proc for proc in _descendants() if proc not in self.before]

    def note_spared(self) -> None:
        for proc in self.started():
            if proc not in self.judged:
                self.judged.add(proc)
                if self.spare(_argv(proc[0])):
                    self.spared.add(proc)

    def stop_jobs(self) -> None:
        started = time.monotonic()
        deadline = started + self.grace
        told: set = set()
        self.note_spared()
        spared = list(self.spared)
        while time.monotonic() < deadline:
            for proc in self.started():
                if proc not in told and not self.spare(_argv(proc[0])):
                    _send(proc, signal.SIGTERM)
                    told.add(proc)
            if spared and not any(map(_alive, spared)):
                # the spared server is gone (a Ctrl-C reaches it too): whoever still wants to
                # report to it would only wait on retries, so the end comes sooner
                deadline = min(deadline, time.monotonic() + SPARED_GONE_SECONDS)
                spared = []
            time.sleep(0.2)
        log.warning("still running %.0f s after signal %d: killing what it started and exiting",
                    time.monotonic() - started, self.signalled)
        _end(self.started(), wait=2.0)
        os._exit(128 + (self.signalled or signal.SIGTERM))

    def stop_leftovers(self) -> None:
        alive = self.started() if self.leftovers is None else [p for p in self.leftovers if _alive(p)]
        alive = [p for p in alive if not _ends_with_this_process(_argv(p[0]))]
        if alive and threading.current_thread() is threading.main_thread():
            # the interpreter is exiting and waits here for what it started: a signal now (a
            # second SIGTERM or Ctrl-C) must not raise into this exit handler as a traceback
            # and leave them running; it ends them and the process at once
            def now(signum, frame):
                for proc in alive:
                    _send(proc, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(128 + signum)

            signal.signal(signal.SIGTERM, now)
            signal.signal(signal.SIGINT, now)
        _end(alive)


def _ends_with_this_process(argv: list[str]) -> bool:
    """multiprocessing's resource tracker (started by a spawned process pool, e.g. a local
    Dask cluster's) ignores SIGTERM and SIGINT by design and exits when the process that
    started it does (its pipe closes): waiting for it at the exit would wait for ever."""
    return any("multiprocessing.resource_tracker" in arg for arg in argv)


def _end(procs: list[tuple[int, str]], wait: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after ``wait`` seconds."""
    for proc in procs:
        _send(proc, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if _alive(proc):
            _send(proc, signal.SIGKILL)


def _descendants(root: int | None = None) -> list[tuple[int, str]]:
    """(pid, start time) of every process below ``root`` (default: this one), from /proc."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[2] != "Z":  # a zombie is gone, only not yet reaped
                children.setdefault(stat[0], []).append((int(entry), stat[1]))
    found, todo = [], [root or os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of ``pid``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19], fields[0]


def _alive(proc: tuple[int, str]) -> bool:
    stat = _stat(proc[0])
    return stat is not None and stat[1] == proc[1] and stat[2] != "Z"


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _send(proc: tuple[int, str], how: int) -> None:
    if _alive(proc):  # the same process, not another that got its pid
        try:
            os.kill(proc[0], how)
        except OSError:
            pass
