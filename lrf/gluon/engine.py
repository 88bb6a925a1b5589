"""The MXNet Gluon engine (the reference): what :mod:`lrf.engine` asks of an engine.

The entry checks (model names, GPUs, a user's parameter files) import no MXNet:
the flow's process and the CLIs run them in milliseconds. The jobs (:data:`JOBS`)
import it when they run, where they were placed.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from lrf.config import REFERENCE_MODEL, SMALL_CNN, Setup
from lrf.gpus import Architectures, driver_gpu_count
from lrf.gluon.cuda_libraries import cuda_build_installed
from lrf.gluon.params_file import check_fits, check_init_params  # noqa: F401  (part of the engine interface)
from lrf.optimizers import check_in_table
from lrf.training import engine_jobs

NAME = "mxnet"
PARAMS_SUFFIX = ".params"  # its parameter files: Block.save_parameters
NO_GPU_HINT = " (this MXNet is the CPU build, or CUDA sees no GPU)"
# The device code of MXNet 1.9.1's CUDA wheels, its last (2022): cubins for these and no PTX,
# read with cuobjdump from every one of the 197 fatbins of mxnet-cu117's libmxnet.so (issue
# 19), the same list assumed for the other CUDA 11 wheels. A Hopper (9.0) or newer GPU has no
# code to run: every kernel would fail with "no kernel image is available".
GPU_CODE = Architectures(cubins=((5, 0), (6, 0), (7, 0), (8, 0), (8, 6)))
GPU_CODE_OF = "MXNet 1.9.1's CUDA build (its last release)"
NO_GPU_CODE_HINT = ("run on the CPU (device='cpu') or on a GPU of compute capability 5.0 to 8.9, or use the torch "
                    "engine (engine='torch', lrf's extra `torch`), whose build runs on 7.5 to 12.x")

# the names mxnet 1.9.1's vision.get_model accepts (it keeps them in a local dict)
ZOO_MODELS = (
    *(f"resnet{depth}_v{version}" for version in (1, 2) for depth in (18, 34, 50, 101, 152)),
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
    "squeezenet1.0", "squeezenet1.1", "inceptionv3",
    "mobilenet1.0", "mobilenet0.75", "mobilenet0.5", "mobilenet0.25",
    "mobilenetv2_1.0", "mobilenetv2_0.75", "mobilenetv2_0.5", "mobilenetv2_0.25",
)


# MXNet 1.9.1's optimizer registry (mx.optimizer.Optimizer.opt_registry) and the arguments
# each constructor takes besides the learning rate, known without importing MXNet (a test
# compares them with MXNet's own). "test" and the deprecated "ccsgd" are left out.
OPTIMIZERS = {
    "sgd": ("momentum", "lazy_update"), "nag": ("momentum",), "signum": ("momentum", "wd_lh"),
    "dcasgd": ("momentum", "lamda"), "sgld": (), "lars": ("momentum", "lazy_update", "eta", "eps", "momentum_correction"),
    "lbsgd": ("momentum", "multi_precision", "warmup_strategy", "warmup_epochs", "batch_scale", "updates_per_epoch",
              "begin_epoch", "num_epochs"),
    "adam": ("beta1", "beta2", "epsilon", "lazy_update"), "adamax": ("beta1", "beta2"),
    "nadam": ("beta1", "beta2", "epsilon", "schedule_decay"), "ftml": ("beta1", "beta2", "epsilon"),
    "lamb": ("beta1", "beta2", "epsilon", "lower_bound", "upper_bound", "bias_correction"),
    "adagrad": ("eps",), "groupadagrad": ("eps",), "adadelta": ("rho", "epsilon"),
    "rmsprop": ("gamma1", "gamma2", "epsilon", "centered", "clip_weights"), "ftrl": ("lamda1", "beta"),
}
# what every MXNet optimizer takes (Optimizer.__init__) that a user may set; the rest of its
# arguments (rescale_grad, lr_scheduler, param_idx2name, sym, begin_num_update, param_dict)
# belong to the trainer and the finder
OPTIMIZER_COMMON = ("wd", "clip_gradient", "multi_precision")
# the ranges that make sense, by argument name: (low, high, high included)
_UNIT = (0.0, 1.0, False)
OPTIMIZER_RANGES = {
    "momentum": _UNIT, "beta1": _UNIT, "beta2": _UNIT, "gamma1": _UNIT, "gamma2": _UNIT, "rho": _UNIT,
    "wd": (0.0, float("inf"), False), "wd_lh": (0.0, float("inf"), False), "eps": (0.0, float("inf"), False),
    "epsilon": (1e-300, float("inf"), False), "clip_gradient": (1e-300, float("inf"), False),
    "clip_weights": (1e-300, float("inf"), False), "lamda": (0.0, float("inf"), False),
    "lamda1": (0.0, float("inf"), False), "eta": (0.0, float("inf"), False), "beta": (0.0, float("inf"), False),
    "schedule_decay": (0.0, float("inf"), False),
}
OPTIMIZER_FLAGS = ("lazy_update", "multi_precision", "centered", "bias_correction", "momentum_correction")


def check_optimizer(name: str, params: dict | None) -> None:
    """Raise ValueError/TypeError naming ``optimizer`` or ``optimizer_params`` and the value
    unless MXNet has optimizer ``name`` and it takes every argument of ``params``, each of
    the right type and in range (momentum and the betas in [0, 1), wd >= 0, epsilon > 0, ...)."""
    check_in_table(name, params, OPTIMIZERS, OPTIMIZER_COMMON, OPTIMIZER_RANGES, OPTIMIZER_FLAGS, "MXNet's")


def model_names() -> list[str]:
    """Every model name the engine builds."""
    return [SMALL_CNN, *ZOO_MODELS]


def check_installed() -> None:
    """Raise ValueError naming the engine unless MXNet is installed here (without importing it):
    lrf leaves the build to the environment (its lock's ``mxnet-cpu`` or ``mxnet-gpu`` group)."""
    if importlib.util.find_spec("mxnet") is None:
        raise ValueError(f"engine={NAME!r} needs MXNet, which is not installed in this environment "
                         f"({sys.executable}): in lrf's checkout `uv sync --locked` installs its CPU build, "
                         "`uv sync --locked --no-group mxnet-cpu --group mxnet-gpu` its CUDA build; a project "
                         "of your own names mxnet==1.9.1 among its dependencies")


def check_model_name(name: str) -> str:
    if name != SMALL_CNN and name not in ZOO_MODELS:
        raise ValueError(
            f"model must be {SMALL_CNN!r} or a Gluon model-zoo name such as {REFERENCE_MODEL!r}, got model={name!r}"
        )
    return name


def visible_gpus() -> int:
    """GPUs MXNet could use here, without importing it: none with the CPU build of MXNet
    (the ``mxnet`` package; CUDA builds are ``mxnet-cuNNN``), else the NVIDIA driver's
    GPUs, as many as ``CUDA_VISIBLE_DEVICES`` lets through."""
    return driver_gpu_count() if cuda_build_installed() else 0


def check_data_source(source: str, data: str) -> None:
    """MXNet reads every data source lrf knows."""


def open_learner(setup: Setup, init_params: str | os.PathLike | None = None):
    """A learner (:class:`lrf.learner.Learner`) over ``setup``, in this process; close it (or ``with``)."""
    from lrf.gluon.experiment import open_learner

    return open_learner(setup, init_params)


def warm_up() -> None:
    """Import what every job needs (MXNet, its model zoo): once per worker, before its first job."""
    import lrf.gluon.experiment  # noqa: F401  (mxnet, and scikit-learn through mxnet.model)


# the jobs, where they were placed: lrf's loops over this engine's experiment
JOBS = engine_jobs("lrf.gluon.experiment")
