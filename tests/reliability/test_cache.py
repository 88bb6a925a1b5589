"""The work cache, damaged: table-driven. What a run reads back from ``output_root/cache/``
must be whole and about the work it asks for; anything else is set aside
(``NAME.corrupt-TIMESTAMP``) with a warning naming it, and computed again. Each case: a
copy of a finished run's cache, one file damaged, the flow run again on it: the run
completes, the damaged file (and only it) is set aside with one warning naming it, and the
numbers are those of the undamaged run. Then the data changed at the same path, a damaged
training state, and a user's edit of a run folder (which must never reach the cache).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrf import SweepResult, cache

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PARAMS = dict(iterations=20, last_k=5, at_once=1, loader_workers=0)


@pytest.fixture(scope="module")
def params(local_jobs):
    """PARAMS on the session's cluster: these runs are about the cache, not about the cluster
    a run starts for itself (which costs each run about 7 s here)."""
    return dict(PARAMS, cluster=local_jobs.address)


@pytest.fixture(scope="module")
def first(prefect_api, tmp_path_factory, params):
    """A finished run on the digits: its output root and summary."""
    from flows.lr_finder import lr_finder

    root = tmp_path_factory.mktemp("first")
    return root, lr_finder(**params, output_root=str(root))


def _fresh(first, tmp_path: Path) -> Path:
    """A new output root whose cache is a copy of the first run's."""
    root = tmp_path / "runs"
    shutil.copytree(first[0] / "cache", root / "cache")
    return root


def _one(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


def _candidates(folder: Path) -> dict[float, Path]:
    return {json.loads(p.read_text())["lr"]: p for p in folder.glob("candidate-*.json")}


# --- the damage --------------------------------------------------------------------------


def truncated(pattern: str, keep=lambda size: size // 2):
    def damage(folder: Path) -> Path:
        path = _one(folder, pattern)
        path.write_bytes(path.read_bytes()[: keep(path.stat().st_size)])
        return path
    return damage


def params_of_another_seed(folder: Path) -> Path:
    import mxnet as mx

    from lrf.gluon.models import build_model, save_parameters

    path = _one(folder, "init-*.params")
    save_parameters(build_model("small-cnn", 10, (1, 8, 8), mx.cpu(), seed=7), path)  # same size, other numbers
    return path


def params_without_their_record(folder: Path) -> Path:
    path = _one(folder, "init-*.params")
    cache.sidecar(path).unlink()
    return path


def another_rate_swapped_in(folder: Path) -> Path:
    by_rate = _candidates(folder)
    low, high = min(by_rate), max(by_rate)
    shutil.copyfile(by_rate[high], by_rate[low])  # asked the lowest rate, the file holds the highest's
    return by_rate[low]


def _edit_candidate(folder: Path, restamp: bool) -> Path:
    path = _candidates(folder)[min(_candidates(folder))]
    data = json.loads(path.read_text())
    data.update(final_loss=-5.0, losses=[])
    if restamp:  # a careful editor who also fixes the digest
        data.pop("sha256")
        work = data.pop("work")
        path.write_text(cache.stamp(json.dumps(data), work))
    else:
        path.write_text(json.dumps(data))
    return path


def without_work_header(folder: Path) -> Path:
    path = _one(folder, "sweep-*.json")
    data = json.loads(path.read_text())
    del data["work"], data["sha256"]
    path.write_text(json.dumps(data))
    return path


# name -> (damage(cache folder) -> the damaged file, text the warning must contain)
DAMAGE = {
    "truncated initial parameters (1000 bytes)": (truncated("init-*.params", lambda size: 1000), "(truncated?)"),
    "initial parameters of another seed": (params_of_another_seed, "does not match the SHA-256"),
    "initial parameters without their record": (params_without_their_record, "has no record"),
    "truncated sweep JSON": (truncated("sweep-*.json"), "cannot be used"),
    "truncated candidate JSON": (lambda f: truncated(_candidates(f)[max(_candidates(f))].name)(f), "cannot be used"),
    "another rate's result swapped in": (another_rate_swapped_in, "it holds other work: lr="),
    "hand-edited result (final_loss -5, no losses)": (lambda f: _edit_candidate(f, restamp=False),
                                                      "does not match its recorded SHA-256"),
    "hand-edited result with its SHA-256 recomputed": (lambda f: _edit_candidate(f, restamp=True),
                                                       "inconsistent: it has no losses"),
    "a sweep of an older lrf (no work header)": (without_work_header, "records no work header"),
}


def _same_numbers(summary: dict, expected: dict) -> None:
    assert summary["recommended_lr"] == expected["recommended_lr"]
    assert summary["pick_lr"] == expected["pick_lr"] and summary["sweep"] == expected["sweep"]
    rows = {row["lr"]: row for row in summary["final_losses"]}
    assert set(rows) == {row["lr"] for row in expected["final_losses"]}
    for row in expected["final_losses"]:
        for key in ("final_loss", "mean_last_k", "holdout_loss", "holdout_accuracy", "iterations"):
            mine = rows[row["lr"]][key]
            assert mine == row[key] if row[key] is None else mine == pytest.approx(row[key], rel=1e-5, nan_ok=True), \
                (row["lr"], key)
    mine = SweepResult.load(Path(summary["run_dir"]) / "sweep.csv")
    theirs = SweepResult.load(Path(expected["run_dir"]) / "sweep.csv")
    assert mine.lrs == theirs.lrs and mine.losses == pytest.approx(theirs.losses, rel=1e-5)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lrf.cache" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_cache_file_is_set_aside_named_and_computed_again(first, params, tmp_path, caplog, name):
    from flows.lr_finder import lr_finder

    damage, why = DAMAGE[name]
    root = _fresh(first, tmp_path)
    folder = root / "cache"
    damaged = damage(folder)
    with caplog.at_level(logging.WARNING, logger="lrf.cache"):
        summary = lr_finder(**params, output_root=str(root))

    assert (Path(summary["run_dir"]) / "summary.json").is_file()  # the run completed
    (aside,) = folder.glob(damaged.name + ".corrupt-*")
    assert {p.name for p in folder.glob("*.corrupt-*")} <= {aside.name, cache.sidecar(damaged).name + aside.suffix}
    (warning,) = _warnings(caplog)
    assert str(damaged) in warning and aside.name in warning and why in warning, warning
    _same_numbers(summary, first[1])
    pristine = first[0] / "cache" / damaged.name
    if damaged.suffix == ".params":  # computed again, bit for bit; the run folder holds a copy that loads
        assert damaged.read_bytes() == pristine.read_bytes()
    assert (Path(summary["run_dir"]) / "init.params").read_bytes() == _one(folder, "init-*.params").read_bytes()


def test_a_change_to_a_run_folder_never_reaches_the_cache(first, params, tmp_path, caplog):
    from flows.lr_finder import lr_finder

    root = _fresh(first, tmp_path)
    cached = _one(root / "cache", "init-*.params")
    before = cached.read_bytes()
    summary = lr_finder(**params, output_root=str(root))
    in_run = Path(summary["run_dir"]) / "init.params"
    assert in_run.read_bytes() == before and os.stat(in_run).st_ino != os.stat(cached).st_ino
    with open(in_run, "wb") as handle:  # what saving parameters to that path does: rewrite in place
        handle.write(b"the user's own parameters")
    assert cached.read_bytes() == before
    with caplog.at_level(logging.WARNING, logger="lrf.cache"):
        again = lr_finder(**params, output_root=str(root))
    assert _warnings(caplog) == [] and not list((root / "cache").glob("*.corrupt-*"))  # all reused, all sound
    _same_numbers(again, first[1])


# --- the data changed at the same path --------------------------------------------------


def _write_rec(path: Path, seed: int, count: int = 48) -> None:
    """``count`` 8x8 JPEGs in 4 classes; ``seed`` decides the pixels."""
    import mxnet as mx
    from PIL import Image

    rng = np.random.RandomState(seed)
    writer = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.randint(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, float(i % 4), i, 0), buffer.getvalue()))
    writer.close()


REC_PARAMS = dict(model="small-cnn", batch_size=8, loader_workers=0, iterations=6, last_k=3, candidate_rates=(0.01,),
                  max_iter=40, at_once=1)


def test_new_data_at_the_same_path_is_new_work(prefect_api, params, tmp_path, caplog):
    from flows.lr_finder import lr_finder

    data = tmp_path / "data" / "images.rec"
    data.parent.mkdir()
    _write_rec(data, seed=1)
    root = tmp_path / "runs"
    old = lr_finder(data=f"rec:{data}", **REC_PARAMS, cluster=params["cluster"], output_root=str(root))
    _write_rec(data, seed=2)  # other images, same path, same size
    with caplog.at_level(logging.WARNING, logger="lrf.cache"):
        new = lr_finder(data=f"rec:{data}", **REC_PARAMS, cluster=params["cluster"], output_root=str(root))
    fresh = lr_finder(data=f"rec:{data}", **REC_PARAMS, cluster=params["cluster"], output_root=str(tmp_path / "fresh"))

    assert SweepResult.load(Path(new["run_dir"]) / "sweep.csv").losses != \
        SweepResult.load(Path(old["run_dir"]) / "sweep.csv").losses
    _same_numbers(new, fresh)  # what the new data gives, not what the old data gave
    assert len(list((root / "cache").glob("init-*.params"))) == 2  # the old work kept, under its own key
    assert _warnings(caplog) == []  # nothing was damaged: the new data simply has new keys


def test_a_result_recorded_for_other_data_is_not_reused_even_under_the_same_name(tmp_path, caplog, local_jobs):
    """Below the names: a job asked to reuse a file made from other data (copied in under the
    name of this work) refuses it."""
    import shutil

    from lrf.cache import WorkCache, sweep_work
    from lrf.config import Setup, SweepConfig
    from lrf import jobs

    data, cache = tmp_path / "images.rec", WorkCache(tmp_path / "cache")
    _write_rec(data, seed=1)
    setup = Setup(data=f"rec:{data}", model="small-cnn", batch_size=8, loader_workers=0)
    init = jobs.init_job(setup, cache, executor=local_jobs)
    config = SweepConfig(max_iter=15)
    old = jobs.sweep_job(setup, config, init, cache, executor=local_jobs)
    old_file = cache.file_for(sweep_work(setup, config, init), ".json")
    _write_rec(data, seed=2)
    new_file = cache.file_for(sweep_work(setup, config, init), ".json")
    assert new_file != old_file  # other data, other work, another name
    shutil.copy(old_file, new_file)
    with caplog.at_level(logging.WARNING, logger="lrf.cache"):
        new = jobs.sweep_job(setup, config, init, cache, executor=local_jobs)
    (warning,) = _warnings(caplog)
    assert "data_fingerprint" in warning and str(new_file) in warning
    assert list(cache.folder.glob(new_file.name + ".corrupt-*")) and new.losses != old.losses


def test_a_damaged_training_state_makes_its_result_unusable(tmp_path, caplog, local_jobs):
    """The refine plan's saved states: a result whose state is damaged is computed again."""
    from lrf.cache import WorkCache
    from lrf.config import Setup
    from lrf import jobs

    setup, cache = Setup(data="digits", loader_workers=0), WorkCache(tmp_path)
    init = jobs.init_job(setup, cache, executor=local_jobs)
    first, state = jobs.candidate_job(setup, init, 0.05, cache, iterations=6, last_k=3, saves_state=True,
                                      executor=local_jobs)
    (out,) = tmp_path.glob("candidate-*.json")
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="lrf.cache"):
        again, _ = jobs.candidate_job(setup, init, 0.05, cache, iterations=6, last_k=3, saves_state=True,
                                      executor=local_jobs)
    (warning,) = _warnings(caplog)
    assert str(state) in warning and str(out) in warning and "set aside" in warning
    assert again.losses == first.losses and state.read_bytes() == good