"""MXNet parameter files read without MXNet (lrf.gluon.params_file), checked against MXNet itself."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from lrf.gluon import models
from lrf.gluon.params_file import check_fits, check_init_params, read_layout


def _mxnet_layout(path) -> dict:
    return {name: (tuple(a.shape), np.dtype(a.dtype).name) for name, a in mx.nd.load(str(path)).items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Parameter files as MXNet writes them: Gluon's, the older collect_params().save, other types."""
    tmp = tmp_path_factory.mktemp("params")
    cnn = models.build_model("small-cnn", 10, (1, 8, 8), mx.cpu())
    paths = {
        "cnn": models.save_parameters(cnn, tmp / "cnn.params"),
        "cnn-seed-7": models.save_parameters(models.build_model("small-cnn", 10, (1, 8, 8), mx.cpu(), seed=7),
                                             tmp / "cnn7.params"),
        "cnn-3-classes": models.save_parameters(models.build_model("small-cnn", 3, (1, 8, 8), mx.cpu()),
                                                tmp / "cnn3.params"),
        "resnet": models.save_parameters(models.build_model("resnet18_v2", 10, (3, 32, 32), mx.cpu()),
                                         tmp / "resnet.params"),
        "legacy": tmp / "legacy.params",
        "mixed": tmp / "mixed.params",
    }
    cnn.collect_params().save(str(paths["legacy"]))
    mx.nd.save(str(paths["mixed"]), {"half": mx.nd.zeros((2, 3), dtype="float16"), "long": mx.nd.ones((5,), dtype="int64"),
                                     "rows": mx.nd.zeros((4, 4)).tostype("row_sparse"),
                                     "csr": mx.nd.array([[1, 0], [0, 2]]).tostype("csr"),
                                     "bytes": mx.nd.zeros((1,), dtype="uint8")})
    return paths


@pytest.mark.parametrize("name", ["cnn", "resnet", "legacy", "mixed"])
def test_the_layout_is_what_mxnet_loads(files, name):
    assert read_layout(files[name]) == _mxnet_layout(files[name])


@pytest.mark.parametrize("given, fits", [("cnn-seed-7", True), ("cnn-3-classes", False), ("resnet", False),
                                         ("mixed", False)])
def test_check_fits_says_what_load_parameters_does(files, given, fits):
    """check_fits passes exactly when Gluon's load_parameters takes the file; a refusal names init_params."""
    net = models.build_model("small-cnn", 10, (1, 8, 8), mx.cpu())
    try:
        models.load_parameters(net, files[given], mx.cpu())
        loads = True
    except ValueError:
        loads = False
    assert loads == fits
    if fits:
        check_fits(files[given], files["cnn"])
        return
    with pytest.raises(ValueError, match=r"init_params='.*' does not fit small-cnn") as error:
        check_fits(files[given], files["cnn"], "small-cnn")
    if given == "cnn-3-classes":
        assert "5.weight is (3, 64) float32 in the file, (10, 64) float32 in small-cnn" in str(error.value)


def test_files_named_the_older_way_are_compared_by_shapes(files, tmp_path):
    """collect_params().save names arrays by prefix (conv0_weight), which MXNet matches when it loads them;
    their shapes must still be the model's."""
    check_fits(files["legacy"], files["cnn"])
    other = tmp_path / "legacy3.params"
    models.build_model("small-cnn", 3, (1, 8, 8), mx.cpu()).collect_params().save(str(other))
    with pytest.raises(ValueError, match=r"does not fit .*its arrays of shape \(3, 64\) float32"):
        check_fits(other, files["cnn"])


def test_entry_check_refuses_what_is_no_parameter_file(files, tmp_path):
    assert check_init_params(None) is None
    assert check_init_params(str(files["cnn"])) == str(files["cnn"])
    cut = tmp_path / "cut.params"
    cut.write_bytes(files["cnn"].read_bytes()[:5000])
    text = tmp_path / "notes.params"
    text.write_text("not parameters at all, but long enough to have a header")
    for value, message in [(str(tmp_path / "missing.params"), "is not a file: it does not exist"),
                           (str(tmp_path), "is not a file: it is a folder"),
                           (str(cut), "ends too early (truncated?)"),
                           (str(text), "does not start like an MXNet parameter file"),
                           ("", "init_params=''")]:
        with pytest.raises(ValueError, match="init_params=") as error:
            check_init_params(value)
        assert message in str(error.value) and repr(value) in str(error.value)
