"""The MXNet Gluon engine (the reference): what :mod:`lrf.engine` asks of an engine.

The entry checks (model names, GPUs, a user's parameter files) import no MXNet:
the flow's process and the CLIs run them in milliseconds. The jobs (:data:`JOBS`)
import it when they run, where they were placed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import metadata

from lrf.config import REFERENCE_MODEL, SMALL_CNN, Setup, SweepConfig
from lrf.gpus import Architectures
from lrf.gluon.params_file import check_fits, check_init_params  # noqa: F401  (part of the engine interface)

NAME = "mxnet"
NO_GPU_HINT = " (this MXNet is the CPU build, or CUDA sees no GPU)"
# The device code of MXNet 1.9.1's CUDA wheels, its last (2022): cubins for these and no PTX,
# read with cuobjdump from every one of the 197 fatbins of mxnet-cu117's libmxnet.so (issue
# 19), the same list assumed for the other CUDA 11 wheels. A Hopper (9.0) or newer GPU has no
# code to run: every kernel would fail with "no kernel image is available".
GPU_CODE = Architectures(cubins=((5, 0), (6, 0), (7, 0), (8, 0), (8, 6)))
GPU_CODE_OF = "MXNet 1.9.1's CUDA build (its last release)"
NO_GPU_CODE_HINT = "run on the CPU (device='cpu') or on a GPU of compute capability 5.0 to 8.9"

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
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of MXNet's: {', '.join(sorted(OPTIMIZERS))}; got optimizer={name!r}")
    takes = OPTIMIZERS[name] + OPTIMIZER_COMMON
    for key, value in (params or {}).items():
        shown = f"optimizer_params={{{key!r}: {value!r}}}"
        if key not in takes:
            raise ValueError(f"{shown}: optimizer={name!r} takes {', '.join(takes)}")
        if key in OPTIMIZER_FLAGS:
            if not isinstance(value, bool):
                raise TypeError(f"{shown}: {key} is true or false")
        elif key in OPTIMIZER_RANGES:
            low, high, closed = OPTIMIZER_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{shown}: {key} is a number")
            if value < low or value > high or (value == high and not closed):
                bound = f"in [{low:g}, {high:g})" if high != float("inf") else (f">= {low:g}" if low == 0 else "> 0")
                raise ValueError(f"{shown}: {key} must be {bound}")


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
    if not any((dist.metadata["Name"] or "").lower().startswith("mxnet-cu") for dist in metadata.distributions()):
        return 0
    try:
        count = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count


def open_learner(setup: Setup, init_params: str | os.PathLike | None = None):
    """A learner (:class:`lrf.learner.Learner`) over ``setup``, in this process; close it (or ``with``)."""
    from lrf.gluon.experiment import open_learner

    return open_learner(setup, init_params)


def warm_up() -> None:
    """Import what every job needs (MXNet, its model zoo): once per worker, before its first job."""
    import lrf.gluon.experiment  # noqa: F401  (mxnet, and scikit-learn through mxnet.model)


# --- the jobs, where they were placed ---------------------------------------------------


def _initialise(setup: Setup, args: dict, paths: dict, folder: str, say):
    from lrf.gluon.experiment import build_network
    from lrf.gluon.models import save_parameters

    net, _, info, _ = build_network(setup)  # both splits: a download (cifar10) happens here
    params = os.path.join(folder, "init.params")
    save_parameters(net, params)
    say(f"initialised {setup.network} for inputs of shape {info.image_shape} (seed {setup.seed})")
    return None, {"params": params}


def _sweep(setup: Setup, args: dict, paths: dict, folder: str, say):
    from lrf.gluon.experiment import run_sweep

    every = args["report_every"]
    config = SweepConfig.from_dict(args["config"])
    total = max(1, config.expected_iterations())  # an upper bound: divergence usually ends it sooner

    def progress(p) -> None:
        say.done((p.iteration + 1) / total)
        if p.iteration % every == 0:
            say(f"iteration {p.iteration} lr={p.lr:.4g} loss={p.loss:.4f} smoothed_loss={p.smoothed_loss:.4f}")

    result = run_sweep(setup, config, init_params=paths["init_params"], progress=progress)
    say.done(1.0)
    say(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value} at lr={result.lrs[-1]:.4g}")
    return result.to_json(), {}


def _candidate(setup: Setup, args: dict, paths: dict, folder: str, say):
    from lrf.gluon.experiment import train_at_rate

    state = os.path.join(folder, "state.params") if args["saves_state"] else None
    total = max(1, args["iterations"])
    result = train_at_rate(setup, paths["init_params"], args["lr"], args["iterations"], args["last_k"], report=say,
                           start=args["start"], resume_from=paths.get("resume_from"), state_out=state,
                           progress=lambda count: say.done(count / total))
    files = {"state": state} if state is not None and not result.diverged else {}
    return result.to_json(), files


JOBS = {"init": _initialise, "sweep": _sweep, "candidate": _candidate}
