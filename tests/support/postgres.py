"""A throwaway PostgreSQL server on 127.0.0.1 for tests: Debian's postgresql,
started and stopped by the test itself (installed with apt-get if missing and
we are root: the install step lives here, not on one machine)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from tests.support.apt import apt_install
from tests.support.prefect_server import free_port


def postgres_bindir() -> Path:
    """The folder with initdb and pg_ctl; apt-get installs Debian's postgresql if needed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("initdb"):
        found = [shutil.which("initdb")]
    if not found and apt_install("postgresql"):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's initdb not found; install Debian's postgresql (apt-get install postgresql)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def running_postgres(database: str = "prefect") -> Iterator[str]:
    """Yield an asyncpg URL of a fresh database; everything is removed afterwards.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
    user (Debian's package creates it) from a folder that user owns.
    """
    bindir = postgres_bindir()
    base = Path(tempfile.mkdtemp(prefix="lrf-pg-"))
    data, log = base / "data", base / "server.log"
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(base, "postgres", "postgres")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [str(bindir / args[0]), *args[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}\n{tail}")
        return done

    port = free_port()
    run("initdb", "-D", str(data), "-U", "lrf", "--auth=trust", "--encoding=UTF8")
    run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60",
        "-o", f"-p {port} -h 127.0.0.1 -k {base}", "start")
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "lrf", database)
        yield f"postgresql+asyncpg://lrf@127.0.0.1:{port}/{database}"
    finally:
        with contextlib.suppress(RuntimeError):
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
