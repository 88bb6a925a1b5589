"""The flow on a Dask cluster it did not start (``cluster=``): a real ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, each with its own local directory."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from flows.lr_finder import lr_finder

pytestmark = pytest.mark.slow


def test_candidates_run_on_both_workers_of_a_given_cluster(prefect_api, tmp_path, dask_cluster):
    summary = lr_finder(iterations=30, last_k=5, loader_workers=0, output_root=str(tmp_path), cluster=dask_cluster.address)
    rows = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())["final_losses"]
    workers = sorted(row["ran_on"].split()[0] for row in rows)
    assert workers == ["w0", "w0", "w1"]  # round-robin over the two workers, sorted by name
    assert all(f"at {dask_cluster.address.rpartition(':')[0]}" in row["ran_on"] for row in rows)
    assert {p.name for p in Path(summary["run_dir"]).iterdir()} >= {"summary.json", "final_losses.csv", "sweep.png"}
    assert dask_cluster.worker_names() == {"w0", "w1"}  # the run left the user's cluster as it was


def test_a_worker_killed_during_a_candidate_loses_nothing(prefect_api, tmp_path, dask_cluster):
    from distributed import Client

    outcome = {}

    def run():
        outcome["summary"] = lr_finder(iterations=400, last_k=5, loader_workers=0, output_root=str(tmp_path),
                                       cluster=dask_cluster.address)

    flow = threading.Thread(target=run)
    flow.start()
    with Client(dask_cluster.address, timeout=30) as client:
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            busy = [addr for addr, keys in client.processing().items() if any("lrf-candidate" in k for k in keys)]
            victim = busy[0] if busy else None
            time.sleep(0.2)
        assert victim is not None, "no candidate ever ran"
        time.sleep(2)  # into its training
        name = str(client.scheduler_info(n_workers=-1)["workers"][victim]["name"])
        os.kill(client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
    flow.join(timeout=600)
    summary = outcome["summary"]
    rows = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())["final_losses"]
    assert len(rows) == 3 and all(row["iterations"] == 400 for row in rows)  # every candidate finished
    assert summary["recommended_lr"] in [row["lr"] for row in rows]
    assert dask_cluster.worker_names() == {"w0", "w1"}, f"{name}'s nanny brings it back"
