import mxnet as mx
import pytest

from lrf.gluon.models import build_model, load_parameters, save_parameters
from lrf.gluon.engine import check_model_name, model_names

CTX = mx.cpu()


def test_reference_and_small_models_are_known():
    assert {"small-cnn", "resnet18_v2"} <= set(model_names())


def test_unknown_model_name():
    with pytest.raises(ValueError, match="model='resnet19'"):
        check_model_name("resnet19")


def test_saved_parameters_load_back_identically(tmp_path):
    net = build_model("small-cnn", 10, (1, 8, 8), CTX, seed=1)
    path = save_parameters(net, tmp_path / "init.params")
    assert [p.name for p in tmp_path.iterdir()] == ["init.params"]
    other = build_model("small-cnn", 10, (1, 8, 8), CTX, seed=2)
    load_parameters(other, path, CTX)
    for (name, a), b in zip(net.collect_params().items(), other.collect_params().values()):
        assert a.data().asnumpy().tobytes() == b.data().asnumpy().tobytes(), name


def test_parameters_of_another_architecture_are_refused(tmp_path):
    path = save_parameters(build_model("small-cnn", 10, (1, 8, 8), CTX), tmp_path / "cnn.params")
    resnet = build_model("resnet18_v2", 10, (3, 32, 32), CTX)
    with pytest.raises(ValueError, match="init_params=.*cnn.params.*does not fit"):
        load_parameters(resnet, path, CTX)
