"""The lr-finder flow with engine="torch" on the session's Dask workers: the same run folder,
artifacts, cache and history as with MXNet, from the same core; the user's optimizer; bad
input refused before any folder is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.lr_finder import lr_finder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(prefect_api, tmp_path_factory, dask_cluster):
    root = tmp_path_factory.mktemp("torch-flow")

    def run(**kwargs):
        state = lr_finder(engine="torch", optimizer="adam", optimizer_params={"beta1": 0.8, "weight_decay": 1e-4},
                          iterations=40, last_k=5, loader_workers=0, output_root=str(root), return_state=True,
                          cluster=dask_cluster.address, **kwargs)
        assert state.is_completed(), state.message
        return state.result()

    return root, run, run()


def test_a_torch_run_writes_the_same_run_folder_and_recommends_by_held_out_loss(first_run):
    root, _, summary = first_run
    run_dir = Path(summary["run_dir"])
    assert {p.name for p in run_dir.iterdir()} == {"init.pt", "sweep.csv", "sweep.png", "candidate_losses.csv",
                                                    "candidates.png", "final_losses.csv", "final_losses.md",
                                                    "summary.json"}
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["setup"]["engine"] == "torch" and on_disk["setup"]["optimizer"] == "adam"
    assert on_disk["setup"]["optimizer_params"] == {"beta1": 0.8, "weight_decay": 1e-4}
    rows = on_disk["final_losses"]
    assert sorted(round(r["multiplier"], 9) for r in rows) == [0.1, 1.0, 10.0]
    finite = [r for r in rows if r["holdout_loss"] is not None]
    (recommended,) = [r for r in rows if r["recommended"]]
    assert on_disk["recommendation"]["measure"] == "holdout_loss"
    assert recommended["holdout_loss"] == min(r["holdout_loss"] for r in finite)
    from lrf.pytorch.params_file import read_layout

    assert read_layout(run_dir / "init.pt")["8.weight"] == ((10, 64), "float32")  # small-cnn, a torch state dict
    history = (root / "history.csv").read_text()
    assert ",torch," in history  # the engine is part of the set-up the history keeps


def test_the_same_torch_run_again_reuses_every_job_and_gives_the_same_answer(first_run):
    _, run, summary = first_run
    again = run()
    assert again["recommended_lr"] == summary["recommended_lr"]
    on_disk = json.loads((Path(again["run_dir"]) / "summary.json").read_text())
    assert on_disk["reused"][:2] == ["initialise-model", "lr-sweep 0"] and len(on_disk["reused"]) == 5


def test_the_engines_do_not_share_work(prefect_api, first_run, dask_cluster):
    root, _, _ = first_run
    mxnet = lr_finder(optimizer="adam", optimizer_params={"beta1": 0.8, "wd": 1e-4}, iterations=40, last_k=5,
                      loader_workers=0, output_root=str(root), cluster=dask_cluster.address, candidate_rates=(0.01,))
    on_disk = json.loads((Path(mxnet["run_dir"]) / "summary.json").read_text())
    assert on_disk["reused"] == [] and (Path(mxnet["run_dir"]) / "init.params").is_file()


@pytest.mark.parametrize("kwargs, message", [
    (dict(data="cifar10"), "data='cifar10' is MXNet's download of CIFAR-10; engine='torch' reads"),
    (dict(optimizer="nag"), "optimizer must be one of torch.optim's"),
    (dict(optimizer_params={"wd": 0.1}), "optimizer_params={'wd': 0.1}: optimizer='sgd' takes"),
    (dict(model="resnet18_v2"), "got model='resnet18_v2'"),
], ids=["cifar10", "nag", "wd", "gluon-model"])
def test_what_torch_cannot_train_is_refused_before_any_folder_is_made(prefect_api, tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        lr_finder(engine="torch", output_root=str(tmp_path / "runs"), **kwargs)
    assert message in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_an_mxnet_parameter_file_given_to_the_torch_engine_is_refused_naming_it(prefect_api, tmp_path):
    import mxnet as mx

    from lrf.gluon.models import build_model, save_parameters

    given = save_parameters(build_model("small-cnn", 10, (1, 8, 8), mx.cpu()), tmp_path / "mine.params")
    with pytest.raises(ValueError, match=r"init_params=.*mine\.params.*PyTorch") as error:
        lr_finder(engine="torch", init_params=str(given), output_root=str(tmp_path / "runs"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs").exists()
