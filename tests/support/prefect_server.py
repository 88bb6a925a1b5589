"""Run a REAL Prefect server, process worker and deployments from a test.

Everything here is started and stopped by the test itself: CI starts nothing.
Every Prefect process gets its own ``PREFECT_HOME`` (normally under
``tmp_path``) and no inherited ``PREFECT_*`` variable, and the test process
talks to the server through a client bound to the API URL only, so nothing in
``~/.prefect`` is used (``import prefect`` in the test process may still create
an empty ``~/.prefect``).

Typical use::

    home = tmp_path / "prefect-home"
    with running_prefect_server(home) as api_url:
        env = prefect_env(api_url, home)
        run_cli(["work-pool", "create", "pool", "--type", "process"], env, cwd)
        run_cli(["deploy", "--all"], env, project_dir)
        with running_worker("pool", env, project_dir, home / "worker.log"):
            flow_run_id = run_deployment("flow/deployment", env, cwd, {"x": 1})
            state = wait_for_flow_run(api_url, flow_run_id, timeout=180)

Processes and signals (measured on prefect 3.9.1, Linux):

* Every long-lived child is started with ``start_new_session=True`` (own
  process group, so a whole group can be signalled without touching pytest)
  and a ``preexec_fn`` that (a) resets SIGINT/SIGTERM to their default
  dispositions and (b) asks the kernel to SIGTERM the child if the test
  process dies (``PR_SET_PDEATHSIG``), so a SIGKILLed pytest leaves no server
  behind.
* (a) matters for the worker. ``prefect worker start`` handles SIGTERM by
  sending *itself* SIGINT, and handles that SIGINT by restoring the SIGINT
  disposition it found at start-up and re-sending SIGINT
  (``setup_signal_handlers_worker``/``forward_signal_handler``). A process
  started from a non-interactive shell with ``&`` inherits SIGINT as
  *ignored* (SIG_IGN), so that re-sent SIGINT is dropped: SIGTERM does
  nothing (measured: still alive 20 s later) and the next SIGINT/SIGTERM makes
  it SIGKILL itself (exit -9, no clean shutdown, flow runs orphaned). With
  SIGINT reset to SIG_DFL in the child, Python installs its KeyboardInterrupt
  handler and one SIGTERM stops the worker cleanly (exit 0 in ~0.5 s).
  ``_stop_process`` still escalates TERM -> INT -> KILL (whole group).
* Process workers start each flow run with ``start_new_session=True``
  (``prefect.runner._starter_engine``), i.e. *outside* the worker's process
  group, so killing the worker's group can orphan a running flow run. Every
  process started here carries ``PREFECT_HOME=<home>`` in its environment
  (the worker passes its environment on to flow runs), and
  ``running_prefect_server`` finally kills any process still carrying it
  (``processes_with_prefect_home``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Interpreter used for every Prefect command: the one running the tests (the
#: uv venv). The process worker launches flow runs with *its* sys.executable,
#: so flow runs use this interpreter too.
PYTHON = sys.executable
PREFECT = [PYTHON, "-m", "prefect"]

SERVER_STARTUP_TIMEOUT = 90.0
WORKER_READY_TIMEOUT = 90.0
CLI_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0
LOG_TAIL_CHARS = 6000

_PR_SET_PDEATHSIG = 1
try:  # loaded in the parent: the child (after fork) only calls it
    import ctypes

    _LIBC: Any = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except Exception:  # pragma: no cover
    _LIBC = None


class PrefectHarnessError(RuntimeError):
    """A Prefect process of the harness failed; the message carries log tails."""


# --------------------------------------------------------------------------- utils


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path | str, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log file (or a note that it is missing)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars * 2))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    text = text[-chars:]
    return f"----- tail of {path} -----\n{text}\n----- end of {path} -----"


def _clean_environ() -> dict[str, str]:
    """os.environ without any PREFECT_* variable (no host/CI config may leak in)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PREFECT_")}


def _common_env(home: Path) -> dict[str, str]:
    env = _clean_environ()
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # never prompt, never colour, never wrap: output is parsed and logged
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "COLUMNS": "250",
            # logs reach the files at once (log tails in failure messages)
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def prefect_env(api_url: str, home: Path | str, **extra: str) -> dict[str, str]:
    """Environment for every Prefect CLI call, worker and (through the worker) flow run."""
    env = _common_env(Path(home).resolve())  # same string as the server's: see processes_with_prefect_home
    env.update(
        {
            "PREFECT_API_URL": api_url,
            # if PREFECT_API_URL were somehow lost, fail instead of silently
            # starting a throwaway ephemeral server
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
            # the worker polls for scheduled runs every N s (default 10)
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "10",
            # loaded 2-core CI box: be patient with the API
            "PREFECT_API_REQUEST_TIMEOUT": "120",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _child_setup() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _LIBC is not None:
        # die (gracefully) with the test process, even if it is SIGKILLed
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _spawn(args: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(args),
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
        )


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _stop_process(proc: subprocess.Popen, signals: Sequence[tuple[int, float]]) -> int | None:
    """Send each (signal, grace seconds) to the process group until it exits; then
    SIGKILL the group (also reaps stragglers that stayed in the group)."""
    for sig, grace in signals:
        if proc.poll() is not None:
            break
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=30)
    _signal_group(proc, signal.SIGKILL)  # anything left in the group
    return proc.returncode


def processes_with_prefect_home(home: Path | str) -> list[int]:
    """PIDs of live processes whose environment has ``PREFECT_HOME=<home>``
    (server, worker, CLI calls and flow runs started by this harness)."""
    marker = f"PREFECT_HOME={home}".encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in environ and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def kill_processes_with_prefect_home(home: Path | str, grace: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process carrying ``PREFECT_HOME=<home>``."""
    pids = processes_with_prefect_home(home)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.2)
        pids = [p for p in pids if pid_alive(p)]
        if not pids:
            break
    return pids


# -------------------------------------------------------------------------- server


def _http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def server_env(home: Path, database_url: str | None = None, ui: bool = False) -> dict[str, str]:
    """Environment of ``prefect server start`` (no PREFECT_API_URL on purpose)."""
    env = _common_env(home)
    env["PREFECT_SERVER_UI_ENABLED"] = "true" if ui else "false"
    # SQLite on a loaded 2-core box: wait for locks instead of failing at 10 s / 5 s
    env["PREFECT_SERVER_DATABASE_TIMEOUT"] = "60"
    env["PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT"] = "30"
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    return env


def server_args(host: str, port: int | str) -> list[str]:
    """What follows ``prefect`` in the command that starts the server here."""
    return ["server", "start", "--host", host, "--port", str(port)]


@contextlib.contextmanager
def running_prefect_server(
    home: Path | str,
    port: int | None = None,
    database_url: str | None = None,
    *,
    startup_timeout: float = SERVER_STARTUP_TIMEOUT,
    ui: bool = False,
    extra_env: Mapping[str, str] | None = None,
    info: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Start ``prefect server start --host 127.0.0.1 --port PORT``, yield the API URL
    (``http://127.0.0.1:PORT/api``) once ``/api/health`` and ``/api/ready`` answer,
    and always stop it (plus every leftover process carrying this PREFECT_HOME).

    ``database_url`` (e.g. ``postgresql+asyncpg://u:pw@127.0.0.1:5432/db``) replaces
    the default SQLite database under ``home``. The server log is
    ``home/server.log``. If ``info`` is given it receives ``pid``, ``port``,
    ``log`` and ``startup_seconds`` on start, and on stop ``strays_killed``
    (pids of other processes still carrying this PREFECT_HOME, killed by the
    safety net; normally ``[]``) and ``strays_surviving``.
    """
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    env = server_env(home, database_url, ui)
    if extra_env:
        env.update(extra_env)

    proc: subprocess.Popen | None = None
    try:
        attempts = 1 if port is not None else 3  # retry only ports we picked
        for attempt in range(1, attempts + 1):
            this_port = port if port is not None else free_port()
            base = f"http://127.0.0.1:{this_port}"
            t0 = time.monotonic()
            with log.open("a") as f:
                f.write(f"\n=== harness: starting server on port {this_port} (attempt {attempt})\n")
            proc = _spawn([*PREFECT, *server_args("127.0.0.1", this_port)], env, home, log)
            deadline = t0 + startup_timeout
            ready = False
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _http_ok(f"{base}/api/health") and _http_ok(f"{base}/api/ready"):
                    ready = True
                    break
                time.sleep(0.5)
            if ready:
                break
            exited = proc.poll() is not None
            _stop_process(proc, [(signal.SIGTERM, 10.0)])
            tail = log_tail(log)
            if exited and "already in use" in tail and attempt < attempts:
                continue  # lost a port race: try another free port
            why = (
                f"exited with code {proc.returncode}"
                if exited
                else f"was not healthy after {startup_timeout:.0f} s"
            )
            raise PrefectHarnessError(f"Prefect server on {base} {why}.\n{tail}")

        assert proc is not None
        if info is not None:
            info.update(
                pid=proc.pid, port=this_port, log=log, startup_seconds=time.monotonic() - t0
            )
        yield f"{base}/api"
        if proc.poll() is not None:
            raise PrefectHarnessError(
                f"Prefect server died during the test (code {proc.returncode}).\n{log_tail(log)}"
            )
    finally:
        if proc is not None:
            # uvicorn shuts down on SIGTERM; KILL the group if it hangs
            _stop_process(proc, [(signal.SIGTERM, STOP_TIMEOUT), (signal.SIGINT, 10.0)])
        # safety net: orphaned flow runs, stray CLI calls, a worker not stopped
        # through running_worker... (normally empty: tests may assert on it)
        stray = processes_with_prefect_home(home)
        survivors = kill_processes_with_prefect_home(home) if stray else []
        if info is not None:
            info.update(strays_killed=stray, strays_surviving=survivors)


# --------------------------------------------------------------------------- CLI


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | str,
    timeout: float = CLI_TIMEOUT,
    *,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m prefect ARGS`` (``args`` excludes the word ``prefect``);
    raise PrefectHarnessError with the command, exit code, stdout and stderr if
    it fails or times out."""
    cmd = [*PREFECT, *map(str, args)]
    try:
        result = subprocess.run(
            cmd,
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:

        def _s(b: Any) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        raise PrefectHarnessError(
            f"`prefect {' '.join(map(str, args))}` timed out after {timeout:.0f} s "
            f"(cwd {cwd}).\n--- stdout ---\n{_s(exc.stdout)[-LOG_TAIL_CHARS:]}"
            f"\n--- stderr ---\n{_s(exc.stderr)[-LOG_TAIL_CHARS:]}"
        ) from None
    if check and result.returncode != 0:
        raise PrefectHarnessError(
            f"`prefect {' '.join(map(str, args))}` failed with exit code "
            f"{result.returncode} (cwd {cwd}).\n--- stdout ---\n"
            f"{result.stdout[-LOG_TAIL_CHARS:]}\n--- stderr ---\n{result.stderr[-LOG_TAIL_CHARS:]}"
        )
    return result


_UUID_RE = re.compile(r"UUID:\s*([0-9a-fA-F-]{36})")


def run_deployment(
    name: str,
    env: Mapping[str, str],
    cwd: Path | str,
    parameters: Mapping[str, Any] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> str:
    """``prefect deployment run FLOW/DEPLOYMENT --params JSON``; return the flow run id.

    Parameters go as one JSON object (``--param k=v`` would JSON-parse each value:
    "1e-3" becomes a float, "true" a bool)."""
    args = ["deployment", "run", name]
    if parameters:
        args += ["--params", json.dumps(dict(parameters))]
    result = run_cli(args, env, cwd, timeout)
    match = _UUID_RE.search(result.stdout)
    if not match:
        raise PrefectHarnessError(
            f"no flow run UUID in the output of `prefect deployment run {name}`:\n{result.stdout}"
        )
    return match.group(1)


# ------------------------------------------------------------------------- client


@contextlib.contextmanager
def prefect_client(api_url: str) -> Iterator[Any]:
    """A SyncPrefectClient bound to ``api_url`` only: no profile, no API key and
    no ephemeral server are taken from this process's settings (~/.prefect)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api_url, httpx_settings={"timeout": 60}) as client:
        yield client


def wait_for_flow_run(
    api_url: str, flow_run_id: str | uuid.UUID, timeout: float = 180.0, poll: float = 1.0
) -> Any:
    """Poll the flow run until its state is final; return that State (``.name`` e.g.
    'Completed', ``.type`` a StateType). Raise TimeoutError with the last state."""
    flow_run_id = uuid.UUID(str(flow_run_id))
    deadline = time.monotonic() + timeout
    state = None
    with prefect_client(api_url) as client:
        while True:
            try:
                state = client.read_flow_run(flow_run_id).state
            except Exception:  # transient API hiccup on a loaded box
                if time.monotonic() > deadline:
                    raise
            if state is not None and state.is_final():
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"flow run {flow_run_id} not finished after {timeout:.0f} s; last state: "
                    f"{state.name if state else None!r} ({state.message if state else ''})"
                )
            time.sleep(poll)


def flow_run_logs(api_url: str, flow_run_id: str | uuid.UUID, limit: int = 200) -> str:
    """The flow run's logs as stored by the API (for failure messages)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    try:
        with prefect_client(api_url) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))])),
                limit=limit,
            )
    except Exception as exc:
        return f"<cannot read logs of flow run {flow_run_id}: {exc!r}>"
    return "\n".join(f"{log.timestamp} {log.level:>2} {log.name}: {log.message}" for log in logs)


def wait_for_worker(
    api_url: str,
    pool: str,
    worker_name: str | None,
    timeout: float = WORKER_READY_TIMEOUT,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Wait until the worker called ``worker_name`` (None: any worker) has registered with
    ``pool`` (its first heartbeat, sent right before it starts polling)."""
    deadline = time.monotonic() + timeout
    with prefect_client(api_url) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise PrefectHarnessError(
                    f"worker for pool {pool!r} exited with code {proc.returncode} before it was ready.\n"
                    + (log_tail(log) if log else "")
                )
            try:
                workers = client.read_workers_for_work_pool(pool)
            except Exception:
                workers = []
            if any(worker_name in (None, w.name) for w in workers):
                return
            time.sleep(0.5)
    raise PrefectHarnessError(
        f"worker {worker_name!r} did not register with pool {pool!r} within {timeout:.0f} s.\n"
        + (log_tail(log) if log else "")
    )


# -------------------------------------------------------------------------- worker


def _start_time(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot): with the pid, an identity
    that survives pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> dict[int, int | None]:
    """{pid: start time} of every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: dict[int, int | None] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = _start_time(child)
                todo.append(child)
    return found


@contextlib.contextmanager
def running_worker(
    pool: str,
    env: Mapping[str, str],
    cwd: Path | str,
    log: Path | str,
    *,
    name: str | None = None,
    ready_timeout: float | None = WORKER_READY_TIMEOUT,
    extra_args: Sequence[str] = (),
    may_die: bool = False,
    command: Sequence[str] | None = None,
) -> Iterator[subprocess.Popen]:
    """``prefect worker start --pool POOL --name NAME`` in the background; yield the
    Popen once the worker has registered with the API (``ready_timeout=None``:
    do not wait); always stop it and the flow runs it started. A worker that died
    during the test is an error unless ``may_die`` (a test that kills it). ``command``
    replaces the worker's command line (a README's, say, through ``bash -c``); ready is
    then when any worker has registered with the pool.

    Stopping: SIGTERM to the worker's process group (the worker turns it into a
    SIGINT to itself and exits, ~0.5 s), then SIGINT, then SIGKILL; then any
    flow-run process it started (own sessions, see module docstring) is killed."""
    log = Path(log)
    name = name or f"harness-worker-{uuid.uuid4().hex[:8]}"
    api_url = env["PREFECT_API_URL"]
    args = [*PREFECT, "worker", "start", "--pool", pool, "--name", name, *extra_args]
    proc = _spawn(args if command is None else list(command), env, Path(cwd), log)
    try:
        if ready_timeout is not None:
            wait_for_worker(api_url, pool, name if command is None else None, ready_timeout, proc, log)
        yield proc
        if proc.poll() is not None and not may_die:
            raise PrefectHarnessError(
                f"worker {name!r} died during the test (code {proc.returncode}).\n{log_tail(log)}"
            )
    finally:
        # snapshot the worker's process tree (flow runs live in their own
        # sessions, so the group kill below does not reach them)
        children = _descendants(proc.pid) if proc.poll() is None else {}
        _stop_process(proc, [(signal.SIGTERM, STOP_TIMEOUT), (signal.SIGINT, 10.0)])
        # a flow run still going: SIGTERM lets the engine report it Crashed; then KILL
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            children = {p: t for p, t in children.items() if _start_time(p) == t}
            for pid in children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while children and time.monotonic() < deadline:
                if not any(pid_alive(p) and _start_time(p) == t for p, t in children.items()):
                    break
                time.sleep(0.2)
