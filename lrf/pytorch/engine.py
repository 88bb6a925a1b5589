"""The PyTorch engine: what :mod:`lrf.engine` asks of an engine, for the GPUs users have.

The entry checks (model and optimizer names, GPUs, a user's parameter files) import no
torch: the flow's process and the CLIs run them in milliseconds. The jobs (:data:`JOBS`,
lrf's loops over :mod:`lrf.pytorch.experiment`) import it when they run, where they were
placed. The same core as MXNet's: sweep, rules, plans, cache, artifacts, placement.
"""

from __future__ import annotations

import importlib.util
import sys

from lrf.config import REFERENCE_MODELS, SMALL_CNN
from lrf.gpus import Architectures, driver_gpu_count
from lrf.optimizers import check_in_table
from lrf.pytorch.params_file import check_fits, check_init_params  # noqa: F401  (part of the engine interface)
from lrf.training import engine_jobs

NAME = "torch"
PARAMS_SUFFIX = ".pt"  # its parameter files: torch.save(state_dict)
NO_GPU_HINT = " (CUDA sees no GPU)"
# The device code of the locked torch (2.14.1, CUDA 13.0 wheels from PyPI), as
# torch._C._cuda_getArchFlags() lists it: cubins and no PTX (a test compares them). A GPU runs
# the cubin of its major version with the highest minor not above its own: an L4 (8.9) the
# sm_86 one, a B300 (10.3) sm_100.
GPU_CODE = Architectures(cubins=((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)))
GPU_CODE_OF = "the locked torch 2.14 (CUDA 13.0 build)"
NO_GPU_CODE_HINT = "run on the CPU (device='cpu'), or install a torch build that carries code for this GPU"
# the sources this engine reads: cifar10 is MXNet's own download
DATA_SOURCES = ("digits", "rec", "folder")

# torchvision's classification models (torchvision.models.list_models(module=torchvision.models),
# 0.29) that train on any image size lrf gives: inception_v3 and googlenet want 299/224 inputs
# and auxiliary outputs; the vision transformers and maxvit a fixed image size
ZOO_MODELS = (
    "alexnet", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
    "densenet121", "densenet161", "densenet169", "densenet201",
    *(f"efficientnet_b{i}" for i in range(8)), "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    *(f"regnet_x_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
    *(f"regnet_y_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "squeezenet1_0", "squeezenet1_1", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
)
REFERENCE_MODEL = REFERENCE_MODELS[NAME]

# torch.optim's optimizers by lower-case name (their classes: OPTIMIZER_CLASSES) and the
# arguments each takes besides lr, known without importing torch (a test compares them with
# the constructors' signatures). Adam's family takes its `betas` pair as beta1 and beta2 (the
# names MXNet gives them): a parameter value is a number, true/false or text, not a pair.
# Left out: LBFGS (its step needs a closure), SparseAdam (sparse gradients only), Muon (2-D
# parameters only); the implementation switches (foreach, fused, capturable, differentiable).
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "NAdam",
                     "radam": "RAdam", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
                     "asgd": "ASGD", "rprop": "Rprop", "adafactor": "Adafactor"}
_ADAM = ("beta1", "beta2", "eps", "weight_decay")
OPTIMIZERS = {
    "sgd": ("momentum", "dampening", "weight_decay", "nesterov"),
    "adam": (*_ADAM, "amsgrad", "decoupled_weight_decay"), "adamw": (*_ADAM, "amsgrad"), "adamax": _ADAM,
    "nadam": (*_ADAM, "momentum_decay", "decoupled_weight_decay"), "radam": (*_ADAM, "decoupled_weight_decay"),
    "rmsprop": ("alpha", "eps", "weight_decay", "momentum", "centered"),
    "adagrad": ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
    "adadelta": ("rho", "eps", "weight_decay"), "asgd": ("lambd", "alpha", "t0", "weight_decay"), "rprop": (),
    "adafactor": ("beta2_decay", "d", "weight_decay"),  # its eps is a pair: left at torch's default
}
OPTIMIZER_COMMON = ("maximize",)
_UNIT = (0.0, 1.0, False)
_POSITIVE = (0.0, float("inf"), False)
OPTIMIZER_RANGES = {
    "momentum": _UNIT, "dampening": (0.0, 1.0, True), "beta1": _UNIT, "beta2": _UNIT, "rho": (0.0, 1.0, True),
    "alpha": _POSITIVE, "eps": _POSITIVE, "weight_decay": _POSITIVE, "lr_decay": _POSITIVE,
    "initial_accumulator_value": _POSITIVE, "momentum_decay": _POSITIVE, "lambd": _POSITIVE, "t0": _POSITIVE,
    "d": (1.0, float("inf"), False), "beta2_decay": (-float("inf"), 0.0, True),
}
OPTIMIZER_FLAGS = ("nesterov", "amsgrad", "centered", "decoupled_weight_decay", "maximize")


def check_optimizer(name: str, params: dict | None) -> None:
    """Raise ValueError/TypeError naming ``optimizer`` or ``optimizer_params`` and the value
    unless torch.optim has optimizer ``name`` and it takes every argument of ``params``, each
    of the right type and in range (momentum and the betas in [0, 1), weight_decay >= 0, ...)."""
    check_in_table(name, params, OPTIMIZERS, OPTIMIZER_COMMON, OPTIMIZER_RANGES, OPTIMIZER_FLAGS, "torch.optim's")
    params = params or {}
    if name == "sgd" and params.get("nesterov") and (params.get("momentum", 0) <= 0 or params.get("dampening", 0) != 0):
        # torch.optim.SGD's own rule, here so that it is refused before any job runs
        raise ValueError(f"optimizer_params={params!r}: optimizer='sgd' with nesterov=True needs "
                         "momentum > 0 and dampening = 0")


def model_names() -> list[str]:
    """Every model name the engine builds."""
    return [SMALL_CNN, *ZOO_MODELS]


def check_installed() -> None:
    """Raise ValueError naming the engine unless torch and torchvision are installed here
    (without importing them): lrf's optional extra ``torch``."""
    missing = [name for name in ("torch", "torchvision") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"engine={NAME!r} needs {' and '.join(missing)}, not installed in this environment "
                         f"({sys.executable}): in lrf's checkout add `--extra torch` to uv's command "
                         "(`uv run --locked --extra torch lrf-flow --engine torch`); elsewhere "
                         "`pip install 'lrf[torch]'`")


def check_model_name(name: str) -> str:
    if name != SMALL_CNN and name not in ZOO_MODELS:
        raise ValueError(f"model must be {SMALL_CNN!r} or a torchvision classification model such as "
                         f"{REFERENCE_MODEL!r}, got model={name!r}")
    return name


def check_data_source(source: str, data: str) -> None:
    if source not in DATA_SOURCES:
        raise ValueError(f"data={data!r} is MXNet's download of CIFAR-10; engine={NAME!r} reads "
                         "digits, rec:PATH/train.rec (the same RecordIO files) or folder:PATH")


def visible_gpus() -> int:
    """GPUs torch could use here, without importing it: the NVIDIA driver's GPUs, as many
    as ``CUDA_VISIBLE_DEVICES`` lets through."""
    return driver_gpu_count()


def open_learner(setup, init_params=None):
    """A learner (:class:`lrf.learner.Learner`) over ``setup``, in this process; close it (or ``with``)."""
    from lrf.pytorch.experiment import open_learner

    return open_learner(setup, init_params)


def warm_up() -> None:
    """Import what every job needs (torch): once per worker, before its first job."""
    import lrf.pytorch.experiment  # noqa: F401
    # torch.optim imports dynamo at an optimizer's first step, and digits come
    # through scikit-learn: seconds each, which would land in the first job
    import sklearn.datasets  # noqa: F401
    import torch._dynamo  # noqa: F401


# the jobs, where they were placed: lrf's loops over this engine's experiment
JOBS = engine_jobs("lrf.pytorch.experiment")
