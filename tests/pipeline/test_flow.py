"""The lr-finder flow under Prefect's test harness, on the offline digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.lr_finder import lr_finder
from lrf.check import to_json

pytestmark = pytest.mark.slow


def test_flow_writes_a_complete_run_folder_and_prefect_artifacts(prefect_api, tmp_path):
    summary = lr_finder(iterations=40, last_k=5, parallel=2, workers=0, output_root=str(tmp_path))
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path.resolve()
    expected = {"init.params", "sweep.csv", "sweep.png", "candidate_losses.csv", "candidates.png",
                "final_losses.csv", "final_losses.md", "summary.json"}
    assert {p.name for p in run_dir.iterdir()} == expected
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["chosen_lr"] == summary["chosen_lr"] and on_disk["rule"] == "reference"
    assert [row["multiplier"] for row in on_disk["final_losses"]] != []
    assert sorted(round(r["multiplier"], 9) for r in on_disk["final_losses"]) == [0.1, 1.0, 10.0]
    header = (run_dir / "candidate_losses.csv").read_text().splitlines()[0]
    assert header.count("lr=") == 3

    from prefect.artifacts import Artifact

    table = Artifact.get("lr-finder-final-losses")
    assert table.type == "table" and str(run_dir) in table.description


def test_bad_parameter_fails_before_any_folder_is_made(prefect_api, tmp_path):
    with pytest.raises(ValueError, match="candidate_multipliers=\\[\\]"):
        lr_finder(candidate_multipliers=(), output_root=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_a_run_started_again_reuses_the_finished_work(prefect_api, tmp_path):
    """As after a kill: the work of the first run is in the cache, the second run redoes none of it
    and still writes a complete folder of its own."""
    params = dict(iterations=30, last_k=5, parallel=3, workers=0, output_root=str(tmp_path))
    first = lr_finder(**params)
    cache = tmp_path / "cache"
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(stamps) == 5  # initial parameters, sweep, three candidates
    second = lr_finder(**params)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # nothing recomputed
    assert second["run_dir"] != first["run_dir"]
    assert to_json(second["final_losses"]) == to_json(first["final_losses"])  # (NaN != NaN, strings compare)
    assert second["chosen_lr"] == first["chosen_lr"]
    assert (Path(second["run_dir"]) / "summary.json").is_file()
