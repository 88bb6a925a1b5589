"""The Gluon learner with real MXNet on small data: restore, lazy shapes, errors."""

import itertools

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from lrf import StopReason, find
from lrf.gluon.device import parse_device
from lrf.gluon.learner import GluonLearner
from lrf.gluon.models import build_model

CTX = mx.cpu()


def params_of(net):
    return {name: p.data().asnumpy().copy() for name, p in net.collect_params().items()}


def assert_bitwise_equal(before, after):
    assert before.keys() == after.keys()
    changed = [name for name in before if before[name].tobytes() != after[name].tobytes()]
    assert changed == []


def fixed_batches(shape, n=32, seed=0):
    rng = np.random.RandomState(seed)
    data = mx.nd.array(rng.randn(n, *shape).astype(np.float32))
    label = mx.nd.array(rng.randint(0, 10, n).astype(np.float32))
    return itertools.repeat((data, label))


@pytest.mark.parametrize("model, shape", [("small-cnn", (1, 8, 8)), ("resnet18_v2", (3, 32, 32))])
def test_parameters_and_trainer_state_restored_bitwise(model, shape):
    net = build_model(model, 10, shape, CTX)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9})
    learner = GluonLearner(net, fixed_batches(shape), CTX, trainer=trainer)
    learner.iteration(0.01), learner.iteration(0.01)  # momentum buffers and BatchNorm statistics now matter
    before = params_of(net)
    states = trainer._updaters[0].get_states(dump_optimizer=False)
    result = find(learner, max_iter=25, lr_start=1e-3)
    assert len(result) > 2  # the sweep trained for real ...
    assert_bitwise_equal(before, params_of(net))  # ... and nothing of it is left
    assert trainer._updaters[0].get_states(dump_optimizer=False) == states
    assert trainer.learning_rate == 0.01


def test_restored_bitwise_when_the_sweep_is_interrupted():
    net = build_model("small-cnn", 10, (1, 8, 8), CTX)
    learner = GluonLearner(net, fixed_batches((1, 8, 8)), CTX)
    before = params_of(net)

    def interrupt(progress):
        if progress.iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        find(learner, progress=interrupt, lr_start=0.01)
    assert_bitwise_equal(before, params_of(net))


def test_lazy_parameters_are_materialised_by_the_first_iteration():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(16, activation="relu"), gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier(), ctx=CTX)  # shapes unknown until data flows
    learner = GluonLearner(net, fixed_batches((5,)), CTX)
    result = find(learner, max_iter=10)
    assert result.stop_reason is StopReason.MAX_ITER
    assert net[0].weight.shape == (16, 5)


def test_dry_run_changes_nothing_even_with_batchnorm():
    net = build_model("resnet18_v2", 10, (3, 32, 32), CTX)
    learner = GluonLearner(net, fixed_batches((3, 32, 32), n=8), CTX)
    learner.iteration(0.01)
    before = params_of(net)
    learner.iteration(None, take_step=False)
    assert_bitwise_equal(before, params_of(net))


def test_a_step_changes_parameters_and_sets_the_rate():
    net = build_model("small-cnn", 10, (1, 8, 8), CTX)
    learner = GluonLearner(net, fixed_batches((1, 8, 8)), CTX)
    assert learner.trainer.learning_rate == 0.001  # SPEC §2
    before = params_of(net)
    loss = learner.iteration(0.5)
    assert isinstance(loss, float) and loss > 0
    assert learner.trainer.learning_rate == 0.5
    assert any(before[k].tobytes() != v.tobytes() for k, v in params_of(net).items())


def test_lr_scheduler_is_refused_with_a_clear_error():
    net = build_model("small-cnn", 10, (1, 8, 8), CTX)
    scheduler = mx.lr_scheduler.FactorScheduler(step=10, factor=0.5)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "lr_scheduler": scheduler})
    with pytest.raises(ValueError, match="lr_scheduler"):
        GluonLearner(net, fixed_batches((1, 8, 8)), CTX, trainer=trainer)


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):  # names differ between instances (prefix counters): compare in order
        return [v.tobytes() for v in params_of(build_model("small-cnn", 10, (1, 8, 8), CTX, seed=seed)).values()]

    a, b, c = weights(42), weights(42), weights(7)
    assert a == b
    assert a != c  # (biases start at zero under both seeds)


@pytest.mark.parametrize("device", ["gpu", "gpu:0", "gpu:3", "the first missing gpu:N"])
def test_asking_for_a_missing_gpu_is_a_clear_error(device):
    visible = mx.context.num_gpus()
    if device.startswith("the first missing"):
        device = f"gpu:{visible}"  # runs on every machine
    elif int(device.partition(":")[2] or 0) < visible:
        pytest.skip(f"{device} exists on this machine ({visible} GPUs); the last case covers it")
    with pytest.raises(ValueError, match=f"device='{device}'"):
        parse_device(device)


@pytest.mark.parametrize("grad_req", ["write", "add"])
@pytest.mark.parametrize("lr_start, stop", [(1e-3, StopReason.DIVERGED), (1.0, StopReason.NON_FINITE)])
def test_gradients_are_zero_after_a_sweep(grad_req, lr_start, stop):
    net = build_model("small-cnn", 10, (1, 8, 8), CTX)
    net.collect_params().setattr("grad_req", grad_req)
    learner = GluonLearner(net, fixed_batches((1, 8, 8)), CTX)
    result = find(learner, lr_start=lr_start, lr_multiplier=3.0 if stop is StopReason.NON_FINITE else 1.1,
                  max_lr=1e30)
    assert result.stop_reason is stop  # the sweep left big (or NaN) gradients behind ...
    grads = {name: p.grad().asnumpy() for name, p in net.collect_params().items()}
    assert [name for name, g in grads.items() if g.any() or not np.isfinite(g).all()] == []  # ... now zeroed


@pytest.mark.parametrize("device", ["tpu", "gpu:-1", "cpu:x", "", None])
def test_unknown_device_names(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'gpu' or 'gpu:N'"):
        parse_device(device)


# one per family of optimizer state: momentum buffers, Nesterov, Adam's two moments and its
# update count (bias correction), RMSProp's centred averages, AdaGrad's history. (float16
# weights with float32 master copies, multi_precision, need a GPU: MXNet has no FP16 gemm on CPU)
OPTIMIZER_FAMILIES = [
    ("sgd", {"momentum": 0.9, "wd": 5e-4}),
    ("nag", {"momentum": 0.9}),
    ("adam", {"beta1": 0.9, "beta2": 0.999, "wd": 1e-4}),
    ("rmsprop", {"gamma1": 0.9, "centered": True}),
    ("adagrad", {}),
]


def _learner_with(optimizer, params):
    net = build_model("small-cnn", 10, (1, 8, 8), CTX)
    trainer = gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": 0.01, **params})
    return net, trainer, GluonLearner(net, fixed_batches((1, 8, 8)), CTX, trainer=trainer)


@pytest.mark.parametrize("optimizer, params", OPTIMIZER_FAMILIES, ids=lambda v: str(v))
def test_every_optimizers_state_is_restored_so_training_goes_on_bit_for_bit(optimizer, params):
    net, trainer, learner = _learner_with(optimizer, params)
    for _ in range(3):
        learner.iteration(0.01)  # the optimizer's state now matters
    snapshot = learner.snapshot()
    straight = [learner.iteration(0.01) for _ in range(4)]
    after = params_of(net)
    find(learner, max_iter=15, lr_start=1e-3)  # a sweep in between ...
    learner.restore(snapshot)
    assert [learner.iteration(0.01) for _ in range(4)] == straight  # ... leaves nothing behind
    assert_bitwise_equal(after, params_of(net))


@pytest.mark.parametrize("optimizer, params", OPTIMIZER_FAMILIES[:4], ids=lambda v: str(v))
def test_a_saved_state_goes_on_in_a_new_learner_as_if_it_never_stopped(tmp_path, optimizer, params):
    net, _, learner = _learner_with(optimizer, params)
    for _ in range(3):
        learner.iteration(0.01)
    learner.save_state(tmp_path / "state.params")
    straight = [learner.iteration(0.01) for _ in range(4)]
    _, _, other = _learner_with(optimizer, params)  # another network, a fresh optimizer
    other.load_state(tmp_path / "state.params")
    assert [other.iteration(0.01) for _ in range(4)] == straight


def test_the_engines_optimizer_table_is_mxnets():
    import inspect

    from lrf.gluon.engine import OPTIMIZER_COMMON, OPTIMIZERS

    registry = mx.optimizer.Optimizer.opt_registry
    assert set(OPTIMIZERS) == set(registry) - {"test", "ccsgd"}
    for name, takes in OPTIMIZERS.items():
        own = [p for p in inspect.signature(registry[name].__init__).parameters
               if p not in ("self", "learning_rate", "kwargs")]
        assert list(takes) == own, name
    common = inspect.signature(mx.optimizer.Optimizer.__init__).parameters
    assert set(OPTIMIZER_COMMON) <= set(common)
