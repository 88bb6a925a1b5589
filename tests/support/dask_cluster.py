"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1, started as a user would start them (the "Scale out" commands of docs/gpu-and-scale-out.md),
each worker with a ``--local-directory`` of its own (no shared scratch space)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.support.prefect_server import _spawn, _stop_process, free_port, log_tail

DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT = 120.0


@dataclass
class DaskCluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self, name: str, threads: int = 1) -> subprocess.Popen:
        """``dask worker ADDRESS --name NAME --nthreads 1 --local-directory DIR`` (one job at a
        time: MXNet's front end is not thread-safe), waited for until the scheduler sees it."""
        local = self.folder / name
        local.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.workers[name] = _spawn([DASK, "worker", self.address, "--name", name, "--nthreads", "1",
                                     "--local-directory", str(local), "--no-dashboard",
                                     "--memory-limit", "0"], env, self.folder, self.folder / f"{name}.log")
        self.wait_for(name)
        return self.workers[name]

    def worker_names(self) -> set[str]:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return {str(info.get("name")) for info in client.scheduler_info(n_workers=-1)["workers"].values()}

    def wait_for(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while name not in self.worker_names():
            if self.workers[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask worker {name} did not join {self.address}:\n"
                                   + log_tail(self.folder / f"{name}.log"))
            time.sleep(0.5)

    def worker_pid(self, name: str) -> int:
        """The pid of the process that runs worker ``name``'s jobs (the CLI runs it under a nanny)."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            pids = client.run(os.getpid)
            names = {addr: str(info.get("name")) for addr, info in
                     client.scheduler_info(n_workers=-1)["workers"].items()}
        return next(pid for addr, pid in pids.items() if names.get(addr) == name)

    def stop(self) -> None:
        for proc in list(self.workers.values()) + [self.scheduler]:
            _stop_process(proc, [(signal.SIGTERM, 10.0)])


@contextlib.contextmanager
def running_dask_cluster(folder: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """``dask scheduler`` on a free port of 127.0.0.1 and ``workers`` named workers (w0, w1, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _spawn([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                       dict(os.environ), folder, folder / "scheduler.log")
    cluster = DaskCluster(address, folder, scheduler)
    try:
        for i in range(workers):
            cluster.start_worker(f"w{i}")
        yield cluster
    finally:
        cluster.stop()
