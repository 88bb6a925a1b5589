"""An output root's history (lrf.history): rows from real summaries of the quadratic run,
appended and read back, what counts as a change, a damaged history set aside, two
writers at once, and ``lrf history``; no framework."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lrf import history
from lrf.cli import main as cli_main
from lrf.config import CandidatePlan, Setup
from lrf.report import write_report
from lrf.run import run
from tests.core.test_run import QuadraticStages


@functools.lru_cache(maxsize=None)
def summary_of(a: float = 1.0, setup: Setup = Setup()) -> dict:
    """The summary of a real (quadratic) run, written once per module into a folder of its
    own; ``a`` scales the curvature, so the right rate moves with 1 / a."""
    plan = CandidatePlan(iterations=40, last_k=5)
    outcome = run(QuadraticStages(plan, a=a), plan)
    return write_report(Path(tempfile.mkdtemp(prefix="lrf-history-test-")) / "run", setup=setup.to_dict(),
                        results=list(outcome.sweeps), selection=outcome.selection, plan=plan,
                        rungs=[list(r) for r in outcome.rungs])


def row_of(tmp: Path, a: float = 1.0, name: str = "run-1", fingerprint: str = "f" * 64,
           setup: Setup = Setup()) -> dict:
    return history.history_row(summary_of(a, setup), fingerprint=fingerprint, run_dir=name,
                               flow_run_id="1234", flow_run_name="brave-fox")


def changed(row: dict, **fields) -> dict:
    """``row`` with other ``fields``, its checksum recomputed (as a run that saw them writes it)."""
    return history._checked({**{k: row[k] for k in history.COLUMNS[:-1]}, **fields})


def test_rows_append_and_read_back_as_written(tmp_path):
    first, second = row_of(tmp_path), row_of(tmp_path, name="run-2")
    rows, aside = history.append(tmp_path, first)
    assert aside is None and rows == [first]
    history.append(tmp_path, second)
    assert history.read_history(tmp_path) == [first, second]
    assert first["recommended_lr"] is not None and first["setup_key"] == second["setup_key"]
    assert first["measure"] == "holdout_loss" and first["run_dir"] == "run-1" and first["deployment"] is None
    assert not list(tmp_path.glob(".history.csv.*.tmp"))
    # a built-in data set's record (as lrf.datasets.data_fingerprint gives it) becomes a digest
    builtin = history.history_row(summary_of(), fingerprint={"source": "digits", "version": 1}, run_dir="run-3")
    assert len(builtin["data_fingerprint"]) == 64 and set(builtin["data_fingerprint"]) <= set("0123456789abcdef")


def test_a_change_is_new_data_or_a_move_beyond_the_factor(tmp_path):
    base = row_of(tmp_path)
    assert history.change([base]) is None
    assert history.change([base, {**base, "run_dir": "run-2"}]) is None  # the same answer
    small = {**base, "recommended_lr": base["recommended_lr"] * 2.9}
    assert history.change([base, small]) is None  # inside the run-to-run spread
    # a 10x stiffer problem moves the pick 10x, but its 10x candidate is the old answer still
    assert history.change([base, row_of(tmp_path, a=10.0, name="run-2")]) is None
    moved = history.change([base, row_of(tmp_path, a=100.0, name="run-2")])  # 100x: the answer moves
    assert moved is not None and "moved 9.7x (more than 3x)" in moved.reason and moved.previous_run == "run-1"
    new_data = history.change([base, {**base, "data_fingerprint": "e" * 64}])
    assert new_data is not None and "the data changed" in new_data.reason
    other = row_of(tmp_path, name="run-3", setup=Setup(batch_size=64))
    assert other["setup_key"] != base["setup_key"]
    assert history.change([base, {**other, "recommended_lr": 1e-9}]) is None  # another set-up: no earlier run


def _damage_cases():
    def cut(text):
        return text[:-7]

    def edited(text):
        return text.replace("brave-fox", "brave-cat", 1)

    def older(text):
        return text.replace("lrf-history/1", "lrf-history/0")

    def other_columns(text):
        return text.replace("holdout_accuracy", "accuracy", 1)

    def empty(text):
        return ""

    return {"truncated": (cut, "truncated"), "edited by hand": (edited, "does not match its recorded SHA-256"),
            "another version's rows": (older, "format 'lrf-history/0'"),
            "another version's columns": (other_columns, "header differs"), "empty": (empty, "truncated")}


@pytest.mark.parametrize("name", list(_damage_cases()))
def test_a_damaged_history_is_set_aside_named_and_the_run_goes_on(tmp_path, caplog, name):
    damage, why = _damage_cases()[name]
    history.append(tmp_path, row_of(tmp_path))
    path = tmp_path / history.HISTORY_FILE
    damaged = damage(path.read_text())
    path.write_text(damaged)
    with pytest.raises(history.UnusableHistory, match=why):
        history.read_history(tmp_path)
    new = row_of(tmp_path, name="run-2")
    with caplog.at_level(logging.WARNING, logger="lrf.history"):
        rows, aside = history.append(tmp_path, new)
    assert rows == [new] and history.read_history(tmp_path) == [new]
    assert aside is not None and aside.name.startswith("history.csv.corrupt-") and aside.read_text() == damaged
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "lrf.history"]
    assert str(path) in warning and aside.name in warning and why in warning


APPEND = """
import json, sys
from lrf import history
root, start, row = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
for number in range(start, start + 100):
    history.append(root, history._checked({**{k: row[k] for k in history.COLUMNS[:-1]}, "run_dir": f"run-{number}"}))
"""


def test_two_runs_appending_at_once_both_keep_every_row(tmp_path):
    row = json.dumps(row_of(tmp_path))
    writers = [subprocess.Popen([sys.executable, "-c", APPEND, str(tmp_path), str(start), row]) for start in (0, 1000)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    names = sorted(r["run_dir"] for r in history.read_history(tmp_path))
    assert names == sorted([f"run-{n}" for n in range(100)] + [f"run-{n}" for n in range(1000, 1100)])


def test_lrf_history_prints_the_rows_and_writes_the_drift_plot(tmp_path, capsys):
    history.append(tmp_path, row_of(tmp_path))
    history.append(tmp_path, changed(row_of(tmp_path, a=100.0, name="run-2"), data_fingerprint="e" * 64))
    history.append(tmp_path, row_of(tmp_path, name="run-3", setup=Setup(batch_size=64)))
    assert cli_main(["history", "--output-root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("| time | recommended |") and len(lines) == 2 + 3
    assert [line.rsplit("|", 2)[1].strip() for line in lines[2:]] == ["run-1", "run-2", "run-3"]  # newest last
    plot = tmp_path / history.DRIFT_PLOT
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(plot) in err
    assert cli_main(["history", "--output-root", str(tmp_path), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / history.HISTORY_FILE).read_text()


def test_lrf_history_says_what_is_wrong_in_one_line(tmp_path, capsys):
    assert cli_main(["history", "--output-root", str(tmp_path / "none")]) == 1
    assert "no completed flow run" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    history.append(tmp_path, row_of(tmp_path))
    (tmp_path / history.HISTORY_FILE).write_text("x\n")
    assert cli_main(["history", "--output-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(tmp_path / history.HISTORY_FILE) in err
    assert (tmp_path / history.HISTORY_FILE).read_text() == "x\n"  # reading changes nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as stopped:
        cli_main(["history", "--output-root", str(tmp_path / "file")])
    assert stopped.value.code == 2 and "output_root=" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["history", "--format", "xml"])

