"""Bad input, table-driven, through both front doors: the ``lrf find`` CLI and the
lr-finder flow. Each bad value must give an error naming the parameter and the
value, before anything runs: the CLI exits 2, the flow fails in its first task,
and no run folder is left under the output root (but for AFTER_RUN_FOLDER)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from lrf.cli import main as cli_main
from tests.support.read_only import read_only_folder


# (parameter, bad value, text the error must contain); "{tmp}" is replaced by a folder with damaged data
BAD = [
    ("data", "mnist", "data='mnist'"),
    ("data", "rec:/nonexistent/train.rec", "/nonexistent/train.rec"),
    ("data", "rec:{tmp}/truncated/train.rec", "is truncated"),
    ("data", "rec:{tmp}/noindex/train.rec", "index file"),
    ("data", "folder:{tmp}/empty", "has no class sub-folder holding an image"),
    ("data", "folder:{tmp}/missing", "is not a directory"),
    ("data", "digits:/some/path", "data=digits takes no path"),
    ("model", "resnet19", "model='resnet19'"),
    ("recipe", "no colon", "recipe='no colon'"),
    ("recipe", "lrf_no_such_project.training:recipe", "No module named 'lrf_no_such_project'"),
    ("recipe", "lrf.config:no_such_factory", "defines no 'no_such_factory' at its top level"),
    ("recipe", "tests.support.recipes:unfit", "its network does not fit its data"),
    ("model", "", "model=''"),
    ("device", "tpu", "device='tpu'"),
    ("device", "gpu:3", "device='gpu:3'"),
    ("device", "gpu:all", "device='gpu:all' asks for every GPU, but this machine has no visible GPU"),
    ("device", "gpu:0,gpu:0", "device='gpu:0,gpu:0'"),
    ("device", "cpu,gpu:1", "device='cpu,gpu:1'"),
    ("device", "gpu:0,gpu:1", "device='gpu:0,gpu:1' asks for GPU 0"),
    ("device", "cpu:99999999999", "device='cpu:99999999999'"),
    ("device", "cpu:1", "device='cpu:1'"),
    ("batch_size", 0, "batch_size=0"),
    ("batch_size", -8, "batch_size=-8"),
    ("batch_size", 5000, "batch_size=5000"),
    ("seed", -1, "seed=-1"),
    ("loader_workers", -1, "loader_workers=-1"),
    ("engine", "jax", "engine='jax'"),
    ("optimizer", "sgdd", "optimizer='sgdd'"),
    ("optimizer_params", {"learning_rate": 0.1}, "sets the learning rate, which the finder sets itself"),
    ("optimizer_params", {"momentum": 1.0}, "momentum must be in [0, 1)"),
    ("optimizer_params", {"wd": -1e-4}, "wd must be >= 0"),
    ("optimizer_params", {"beta1": 0.9}, "optimizer='sgd' takes momentum"),
    ("optimizer_params", {"momentum": "fast"}, "momentum is a number"),
    ("plan", "reference", "plan='reference' ('reference' is now 'multiples')"),
    ("criterion", "reference", "criterion='reference' ('reference' is now 'twice-first')"),
    ("lr_start", 0.0, "lr_start=0.0"),
    ("lr_start", -1e-3, "lr_start=-0.001"),
    ("lr_start", math.nan, "lr_start=nan"),
    ("lr_start", math.inf, "lr_start=inf"),
    ("lr_start", 100.0, "lr_start=100.0"),
    ("lr_multiplier", 1.0, "lr_multiplier=1.0"),
    ("lr_multiplier", 0.5, "lr_multiplier=0.5"),
    ("lr_end", 1e-9, "lr_end=1e-09"),
    ("lr_end", 100.0, "lr_end=100.0"),
    ("schedule", "cosine", "schedule='cosine'"),
    ("smoothing", 1.0, "smoothing=1.0"),
    ("smoothing", -0.1, "smoothing=-0.1"),
    ("min_iter", 0, "min_iter=0"),
    ("criterion", "magic", "criterion"),
    ("max_iter", 0, "max_iter=0"),
    ("max_lr", 0.0, "max_lr=0.0"),
    ("max_lr", math.inf, "max_lr=inf"),
    ("rule", "magic", "rule"),
    ("candidate_multipliers", (), "candidate_multipliers=[]"),
    ("candidate_multipliers", (1.0, 1.0), "must not repeat"),
    ("candidate_multipliers", (1.0, 0.0), "candidate_multipliers=0.0"),
    ("candidate_rates", (), "candidate_rates=[]"),
    ("candidate_rates", (0.1, 0.1), "must not repeat"),
    ("candidate_rates", (0.1, -1.0), "candidate_rates=-1.0"),
    ("iterations", 0, "iterations=0"),
    ("last_k", 0, "last_k=0"),
    ("at_once", 0, "at_once=0"),
    ("cluster", "localhost:8786", "cluster='localhost:8786'"),
    ("cluster", "tcp://127.0.0.1:9", "cluster='tcp://127.0.0.1:9': no Dask scheduler answered"),
    ("plan", "grid", "plan='grid'"),
    ("refine_rates", 1, "refine_rates=1"),
    ("refine_span", 1.0, "refine_span=1.0"),
    ("rungs", 0, "rungs=0"),
    ("sweeps", 0, "sweeps=0"),
    ("recompute", "yes", "recompute='yes'"),
    ("spread_threshold", 1.0, "spread_threshold=1.0"),
    ("output_root", "{tmp}/a-file", "output_root="),
    ("output_root", "{tmp}/a-file/runs", "lies below a file"),
    ("output_root", "{tmp}/cache-is-a-file", "holds a file named 'cache'"),
    ("output_root", "{tmp}/read-only/runs", "is not writable"),
    ("output_root", "{tmp}/" + "x" * 300, "File name too long"),
    ("output_root", "{tmp}/new/" + "x" * 300, "bytes, more than the"),
    ("init_params", "{tmp}/missing.params", "it does not exist"),
    ("init_params", "{tmp}/empty", "it is a folder"),
    ("init_params", "{tmp}/a-file", "to be an MXNet parameter file"),
    ("init_params", "{tmp}/resnet.params", "does not fit"),
    ("out", "{tmp}/not-empty", "exists and is not an empty folder"),
    ("out", "{tmp}/a-file", "is a file"),
    ("out", "{tmp}/a-file/run", "lies below a file"),
    ("out", "{tmp}/read-only", "is not writable"),
    ("out", "{tmp}/read-only/run", "is not writable"),
    ("out", "{tmp}/" + "x" * 300, "File name too long"),
    ("out", "{tmp}/new/" + "x" * 300, "bytes, more than the"),
]
CLI_ONLY = {"out"}
FLOW_ONLY = {"candidate_multipliers", "candidate_rates", "iterations", "last_k", "at_once", "cluster", "output_root",
             "plan", "refine_rates", "refine_span", "rungs", "sweeps", "spread_threshold", "recompute"}
CLI_CHOICES = {"schedule", "criterion", "rule", "engine"}  # argparse refuses these itself: "invalid choice"
# the flow finds these only once it has the model's fresh parameters, in initialise-model: the
# run folder exists by then, and stays without a summary
AFTER_RUN_FOLDER = {("init_params", "does not fit"), ("recipe", "its network does not fit its data")}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, cifar10_dir):
    """A folder of damaged inputs: truncated and index-less RecordIO, empty image folder, a file,
    a folder nobody can write into, etc."""
    import mxnet as mx

    from lrf.gluon.models import build_model, save_parameters

    CIFAR = cifar10_dir
    tmp = tmp_path_factory.mktemp("damaged")
    source = (CIFAR / "test.rec").read_bytes()
    (tmp / "truncated").mkdir()
    (tmp / "truncated" / "train.rec").write_bytes(source[: len(source) - 1000])
    (tmp / "truncated" / "train.idx").write_bytes((CIFAR / "test.idx").read_bytes())
    (tmp / "noindex").mkdir()
    (tmp / "noindex" / "train.rec").write_bytes(source[:4096])
    (tmp / "empty" / "cats").mkdir(parents=True)
    (tmp / "a-file").write_text("not a folder")
    (tmp / "cache-is-a-file").mkdir()
    (tmp / "cache-is-a-file" / "cache").write_text("not a folder")
    (tmp / "not-empty").mkdir()
    (tmp / "not-empty" / "keep.txt").write_text("a previous run")
    save_parameters(build_model("resnet18_v2", 10, (3, 32, 32), mx.cpu()), tmp / "resnet.params")
    with read_only_folder(tmp / "read-only"):
        yield tmp


def _value(value, tmp):
    return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value


@pytest.mark.parametrize("param, value, message", [row for row in BAD if row[0] not in FLOW_ONLY],
                         ids=lambda v: repr(v)[:40])
def test_cli_exits_2_naming_option_and_value(tmp_path, capsys, damaged, param, value, message):
    value = _value(value, damaged)
    out = Path(value) if param == "out" else tmp_path / "run"
    option = "--" + param.replace("_", "-")
    with pytest.raises(SystemExit) as exit_:
        items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else [str(value)]
        cli_main(["find", "--out", str(out), "--no-progress", option, *items])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}" in error
    if param in CLI_CHOICES:
        assert "invalid choice" in error
    else:
        assert message.replace("{tmp}", str(damaged)) in error
    if param != "out":
        assert not out.exists()
    else:  # nothing made, nothing left in what was there
        assert not os.path.lexists(out) or out.is_file() or sorted(os.listdir(out)) in ([], ["keep.txt"])


@pytest.mark.slow
@pytest.mark.parametrize("param, value, message", [row for row in BAD if row[0] not in CLI_ONLY],
                         ids=lambda v: repr(v)[:40])
def test_flow_fails_first_naming_parameter_and_value(prefect_api, local_jobs, tmp_path, damaged, param, value,
                                                     message):
    from flows.lr_finder import lr_finder

    root = _value(value, damaged) if param == "output_root" else str(tmp_path / "runs")
    # the session's cluster where the cluster is not the bad input: no cluster started per case
    kwargs = {"output_root": root, "cluster": local_jobs.address, param: _value(value, damaged)}
    state = lr_finder(**kwargs, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception) as error:
        state.result()
    assert message.replace("{tmp}", str(damaged)) in str(error.value)
    assert param in str(error.value) or param == "data"
    if param == "output_root":  # untouched, not made
        assert (not os.path.lexists(root) or os.path.isdir(root) and os.listdir(root) == ["cache"]
                or Path(root).read_text() == "not a folder")
    elif (param, message) in AFTER_RUN_FOLDER:
        assert len(list(Path(root).glob("run-*"))) == 1 and not list(Path(root).glob("run-*/*"))  # left empty
    else:
        assert not Path(root).exists()  # not even the output root was made
