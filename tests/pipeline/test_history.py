"""Runs that remember: the flow's history on a real (temporary) Prefect API.

Two runs of one set-up into one output root give two history rows, ``lrf history`` prints
them and writes the drift plot, the set-up's keyed artifact has two versions and the
second report shows the drift plot; a third run on changed data at the same path emits
``lrf.recommendation.changed`` and says so at the top of its report, and the automation
of ``lrf-automations --notify custom-webhook/lrf-alerts`` sends the notification through
that block to a webhook this test serves on 127.0.0.1. A failed run appends nothing."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lrf import history
from lrf.cli import main as cli_main
from tests.reliability.test_cache import REC_PARAMS, _write_rec

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def webhook() -> "tuple[str, queue.Queue]":
    """An HTTP server on 127.0.0.1: its URL, and a queue of the JSON bodies POSTed to it."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.put(json.loads(body or b"null"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _api(api_url: str, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(f"{api_url}{path}", data=None if body is None else json.dumps(body).encode(),
                                     method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def _events(api_url: str, name: str) -> list[dict]:
    return _api(api_url, "POST", "/events/filter", {"filter": {"event": {"name": [name]}}, "limit": 50})["events"]


@pytest.fixture
def notified():
    """A webhook on 127.0.0.1 behind the block ``custom-webhook/lrf-alerts``, and the automations
    of ``lrf-automations --notify`` for it on the session's API (removed afterwards): the queue
    of the bodies it receives."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, "PREFECT_API_URL": api_url}
    automations = [sys.executable, "-m", "deployments.automations"]
    with webhook() as (url, received):
        refused = subprocess.run([*automations, "--notify", "custom-webhook/lrf-alerts"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "--notify 'custom-webhook/lrf-alerts': no such block" in refused.stderr
        assert not _api(api_url, "POST", "/automations/filter", {})  # refused before it made anything
        CustomWebhookNotificationBlock(name="lrf", url=url, json_data={"text": "{{body}}"}).save("lrf-alerts")
        done = subprocess.run([*automations, "--notify", "custom-webhook/lrf-alerts"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        ids = re.findall(r": ([0-9a-f-]{36})$", done.stdout, re.M)
        assert len(ids) == 2 and "lrf: notify when the recommendation changes" in done.stdout
        try:
            yield received
        finally:
            for id_ in ids:
                _api(api_url, "DELETE", f"/automations/{id_}")


def test_runs_into_one_output_root_build_a_history_and_changed_data_raises_the_alert(
        prefect_api, dask_cluster, notified, tmp_path, capsys):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL

    from flows.lr_finder import lr_finder

    data = tmp_path / "data" / "images.rec"
    data.parent.mkdir()
    _write_rec(data, seed=1)
    root = tmp_path / "runs"

    def run(**kwargs):
        return lr_finder(data=f"rec:{data}", **{**REC_PARAMS, **kwargs}, cluster=dask_cluster.address,
                         output_root=str(root))

    first, second = run(), run()
    rows = history.read_history(root)
    assert [r["run_dir"] for r in rows] == [Path(first["run_dir"]).name, Path(second["run_dir"]).name]
    assert rows[0]["setup_key"] == rows[1]["setup_key"] and rows[0]["recommended_lr"] == first["recommended_lr"]
    assert rows[1]["flow_run_id"] and rows[0]["flow_run_id"] != rows[1]["flow_run_id"]
    assert history.change(rows) is None  # the same data, the same answer

    assert cli_main(["history", "--output-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"| {rows[0]['setup_key'][:12]} |") == 2
    assert (root / history.DRIFT_PLOT).read_bytes()[:4] == b"\x89PNG"

    key = history.artifact_key(rows[0]["setup_key"])
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert len(versions) == 2 and sorted(len(json.loads(v.data)) for v in versions) == [1, 2]  # Prefect keeps each version
    report = Artifact.get("lr-finder-report").data
    assert "over this output root's runs" in report and "recommendation changed" not in report

    with pytest.raises(ValueError):  # a run that fails appends nothing
        run(iterations=0)
    assert len(history.read_history(root)) == 2

    _write_rec(data, seed=2)  # other images, same path, same size
    third = run()
    rows = history.read_history(root)
    assert len(rows) == 3 and rows[2]["data_fingerprint"] != rows[1]["data_fingerprint"]
    moved = history.change(rows)
    assert moved is not None and "the data changed" in moved.reason
    report = Artifact.get("lr-finder-report").data
    assert report.splitlines()[2].startswith("**The recommendation changed since the last run of this set-up")

    deadline = time.monotonic() + 60  # the server files events a moment after they are emitted
    while not (events := _events(PREFECT_API_URL.value(), "lrf.recommendation.changed")):
        assert time.monotonic() < deadline, "no lrf.recommendation.changed event"
        time.sleep(1)
    (event,) = events
    assert event["resource"]["prefect.resource.id"] == f"lrf.setup.{rows[2]['setup_key']}"
    assert event["payload"]["reason"] == moved.reason
    assert event["payload"]["run_dir"] == third["run_dir"]
    assert event["payload"]["previous_lr"] == rows[1]["recommended_lr"]
    body = notified.get(timeout=120)  # the server's automation acts within seconds
    assert body["text"].startswith("lrf: the recommendation for ") and moved.reason in body["text"], body
    assert notified.empty()  # the first two runs (nothing moved) sent nothing
