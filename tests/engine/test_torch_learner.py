"""The PyTorch learner and engine with real torch on small data: the same invariants as the
Gluon engine's (restore bit for bit with BatchNorm and optimizer state, a dry run that changes
nothing, a saved state that goes on as if it never stopped), and its tables against torch's."""

import inspect
import itertools

import pytest
import torch
from torch import nn

from lrf import find
from lrf.config import Setup
from lrf.pytorch.experiment import make_optimizer
from lrf.pytorch.learner import TorchLearner
from lrf.pytorch.models import initialise, network

CPU = torch.device("cpu")


def with_batchnorm() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


def fixed_batches(n=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(n, 1, 8, 8, generator=generator)
    label = torch.randint(0, 10, (n,), generator=generator)
    return itertools.repeat((data, label))


def state_of(learner):
    """Every parameter and buffer, and every tensor of the optimizer's state, as bytes."""
    net = {name: value.detach().clone() for name, value in learner.net.state_dict().items()}
    opt = {(i, key): value.clone() for i, s in learner.optimizer.state_dict()["state"].items()
           for key, value in s.items() if torch.is_tensor(value)}
    return net, opt, [dict((k, v) for k, v in g.items() if k != "params")
                      for g in learner.optimizer.state_dict()["param_groups"]]


def assert_same(a, b):
    assert a[0].keys() == b[0].keys() and a[1].keys() == b[1].keys()
    assert [k for k in a[0] if not torch.equal(a[0][k], b[0][k])] == []
    assert [k for k in a[1] if not torch.equal(a[1][k], b[1][k])] == []
    assert a[2] == b[2]


# one per family of optimizer state: momentum buffers, Nesterov, Adam's two moments and its
# step count (bias correction), AMSGrad's maxima, RMSprop's centred averages, Adagrad's sums
OPTIMIZER_FAMILIES = [
    ("sgd", {"momentum": 0.9, "weight_decay": 5e-4}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "weight_decay": 1e-4, "amsgrad": True}),
    ("adamw", {}),
    ("rmsprop", {"alpha": 0.9, "centered": True, "momentum": 0.5}),
    ("adagrad", {}),
]


def with_dropout() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def learner_with(optimizer, params, seed=42, build=with_batchnorm):
    net = initialise(build(), (1, 8, 8), CPU, seed)
    return TorchLearner(net, fixed_batches(), CPU, optimizer=make_optimizer(optimizer, net.parameters(), params))


@pytest.mark.parametrize("optimizer, params", OPTIMIZER_FAMILIES, ids=str)
def test_every_optimizers_state_and_batchnorm_are_restored_so_training_goes_on_bit_for_bit(optimizer, params):
    learner = learner_with(optimizer, params)
    for _ in range(3):
        learner.iteration(0.01)  # momentum, moments, BatchNorm statistics and its counter now matter
    snapshot = learner.snapshot()
    before = state_of(learner)
    straight = [learner.iteration(0.01) for _ in range(4)]
    after = state_of(learner)
    result = find(learner, max_iter=15, lr_start=1e-3)  # a sweep in between: it restores ...
    assert len(result) > 2
    assert_same(after, state_of(learner))  # ... everything, the running statistics included
    learner.restore(snapshot)
    assert_same(before, state_of(learner))
    assert [learner.iteration(0.01) for _ in range(4)] == straight  # ... and training goes on the same
    learner.restore(snapshot)  # the snapshot was not changed by the training after the last restore
    assert_same(before, state_of(learner))


def test_restored_bitwise_when_the_sweep_is_interrupted():
    learner = learner_with("sgd", {"momentum": 0.9})
    learner.iteration(0.01)
    before = state_of(learner)

    def interrupt(progress):
        if progress.iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        find(learner, progress=interrupt, lr_start=0.01)
    assert_same(before, state_of(learner))
    assert all(p.grad is None for p in learner.net.parameters())  # no gradient left to add to


def test_dry_run_changes_nothing_even_with_batchnorm():
    learner = learner_with("sgd", {})
    before = state_of(learner)
    assert learner.iteration(take_step=False) > 0
    assert_same(before, state_of(learner))
    assert learner.net.training  # back in training mode


def test_a_step_changes_parameters_and_sets_every_groups_rate():
    learner = learner_with("adam", {})
    before = state_of(learner)
    learner.iteration(0.003)
    assert [g["lr"] for g in learner.optimizer.param_groups] == [0.003]
    assert not torch.equal(before[0]["0.weight"], learner.net.state_dict()["0.weight"])


@pytest.mark.parametrize("optimizer, params", OPTIMIZER_FAMILIES[:4], ids=str)
def test_a_saved_state_goes_on_in_a_new_learner_as_if_it_never_stopped(tmp_path, optimizer, params):
    learner = learner_with(optimizer, params)
    for _ in range(3):
        learner.iteration(0.01)
    learner.save_state(tmp_path / "state")
    straight = [learner.iteration(0.01) for _ in range(4)]
    other = learner_with(optimizer, params, seed=7)  # other weights, a fresh optimizer
    other.load_state(tmp_path / "state")
    assert [other.iteration(0.01) for _ in range(4)] == straight


def test_a_saved_state_goes_on_with_dropouts_masks_where_they_were(tmp_path):
    learner = learner_with("sgd", {"momentum": 0.9}, build=with_dropout)
    for _ in range(3):
        learner.iteration(0.05)
    learner.save_state(tmp_path / "state")
    straight = [learner.iteration(0.05) for _ in range(4)]
    other = learner_with("sgd", {"momentum": 0.9}, seed=7, build=with_dropout)  # its own draws since
    other.load_state(tmp_path / "state")
    assert [other.iteration(0.05) for _ in range(4)] == straight


class _Records(nn.Linear):
    """A layer that notes where its weights are when it is run and when it draws them."""

    def __init__(self):
        self.seen = []
        super().__init__(64, 10)

    def reset_parameters(self):
        self.seen.append(("draw", self.weight.device.type))
        super().reset_parameters()

    def forward(self, x):
        self.seen.append(("run", self.weight.device.type))
        return super().forward(x.flatten(1))


def test_a_seed_draws_on_the_cpu_whatever_the_device_the_network_goes_to():
    """Drawn from the CPU's generator, then moved: a GPU's draws other numbers, so the same seed
    would give other weights there ("meta", a device without numbers, stands in for a GPU)."""
    layer = _Records()
    layer.seen.clear()
    moved = initialise(layer, (1, 8, 8), torch.device("meta"), 42)
    assert layer.seen == [("run", "cpu"), ("draw", "cpu")]
    assert moved.weight.device.type == "meta"


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed, build=with_batchnorm):
        return initialise(build(), (1, 8, 8), CPU, seed).state_dict()

    a, b, c = weights(42), weights(42), weights(7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])
    # the network's own draw at construction does not matter: lrf draws again from the seed
    torch.manual_seed(123)
    built_elsewhere = with_batchnorm()
    assert all(torch.equal(a[k], initialise(built_elsewhere, (1, 8, 8), CPU, 42).state_dict()[k]) for k in a)
    small = weights(42, lambda: network("small-cnn", 10))
    assert [tuple(v.shape) for v in small.values()][-2:] == [(10, 64), (10,)]


def test_the_optimizer_table_is_torch_optims():
    from lrf.pytorch.engine import OPTIMIZER_CLASSES, OPTIMIZER_COMMON, OPTIMIZERS

    implementation = {"params", "lr", "foreach", "fused", "capturable", "differentiable"}
    assert set(OPTIMIZERS) == set(OPTIMIZER_CLASSES)
    for name, takes in OPTIMIZERS.items():
        own = set(inspect.signature(getattr(torch.optim, OPTIMIZER_CLASSES[name]).__init__).parameters) - {"self"}
        own -= implementation
        if "betas" in own:
            own = (own - {"betas"}) | {"beta1", "beta2"}
        if name == "rprop":
            own -= {"etas", "step_sizes"}  # pairs too, left at torch's defaults
        if name == "adafactor":
            own -= {"eps"}  # a pair (eps1, eps2) too
        assert own == set(takes) | set(OPTIMIZER_COMMON), name


def test_beta1_and_beta2_are_torchs_betas_and_torchs_own_checks_name_the_parameters():
    net = with_batchnorm()
    assert make_optimizer("adam", net.parameters(), {"beta1": 0.8}).param_groups[0]["betas"] == (0.8, 0.999)
    with pytest.raises(ValueError, match="optimizer='sgd' with optimizer_params=.*nesterov"):
        make_optimizer("sgd", net.parameters(), {"nesterov": True})  # Nesterov needs momentum


def test_the_gpu_code_table_is_the_locked_torchs():
    from lrf.pytorch.engine import GPU_CODE

    assert torch._C._cuda_getArchFlags().split() == [f"sm_{a}{b}" for a, b in GPU_CODE.cubins]
    assert GPU_CODE.ptx == ()


def test_every_zoo_name_is_a_torchvision_model_that_trains_on_small_images():
    import torchvision

    from lrf.pytorch.engine import ZOO_MODELS

    assert set(ZOO_MODELS) <= set(torchvision.models.list_models(module=torchvision.models))
    net = initialise(network("resnet18", 10), (3, 32, 32), CPU)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("setup, message", [
    (dict(data="cifar10"), "data='cifar10' is MXNet's download of CIFAR-10; engine='torch' reads digits, rec:"),
    (dict(model="resnet18_v2"), "model must be 'small-cnn' or a torchvision classification model such as "
                                "'resnet18', got model='resnet18_v2'"),
    (dict(optimizer="nag"), "optimizer must be one of torch.optim's: adadelta, adafactor,"),
    (dict(optimizer_params={"wd": 0.1}), "optimizer_params={'wd': 0.1}: optimizer='sgd' takes momentum, dampening, "
                                         "weight_decay, nesterov, maximize"),
    (dict(optimizer="adam", optimizer_params={"beta1": 1.0}), "beta1 must be in [0, 1)"),
    (dict(optimizer_params={"nesterov": True}), "optimizer_params={'nesterov': True}: optimizer='sgd' with "
                                                "nesterov=True needs momentum > 0 and dampening = 0"),
    (dict(optimizer_params={"nesterov": True, "momentum": 0.9, "dampening": 0.1}), "needs momentum > 0 and dampening"),
    (dict(optimizer="adafactor", optimizer_params={"d": 0.5}), "d must be >= 1"),
    (dict(optimizer="adafactor", optimizer_params={"eps": 1e-3}), "optimizer='adafactor' takes beta2_decay, d, "),
    (dict(device="gpu:0"), "device='gpu:0' asks for GPU 0, but this machine has 0 visible GPU(s) (CUDA sees no GPU)"),
], ids=lambda v: str(v)[:40])
def test_the_entry_check_refuses_what_torch_cannot_train_naming_the_parameter(setup, message):
    from lrf.engine import prepare_setup

    with pytest.raises(ValueError) as error:
        prepare_setup(Setup(engine="torch", **setup))
    assert message in str(error.value)


def test_a_model_that_does_not_fit_the_data_is_named_with_the_shape(tmp_path):
    from lrf.engine import prepare_setup
    from lrf.pytorch.experiment import initialise as save_fresh

    setup, _ = prepare_setup(Setup(engine="torch", model="resnet18", loader_workers=0))  # 3 channels wanted
    with pytest.raises(ValueError, match=r"model='resnet18' does not fit the data \(one input of shape \(1, 8, 8\)\)"):
        save_fresh(setup, str(tmp_path))
    assert list(tmp_path.iterdir()) == []
