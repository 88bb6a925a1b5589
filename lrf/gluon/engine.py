"""The MXNet Gluon engine (the reference): what :mod:`lrf.engine` asks of an engine.

The entry checks (model names, GPUs, a user's parameter files) import no MXNet:
the flow's process and the CLIs run them in milliseconds. The jobs (:data:`JOBS`)
import it when they run, where they were placed.
"""

from __future__ import annotations

import os
from importlib import metadata

from lrf.config import REFERENCE_MODEL, SMALL_CNN, Setup, SweepConfig
from lrf.gluon.params_file import check_fits, check_init_params  # noqa: F401  (part of the engine interface)

NAME = "mxnet"
NO_GPU_HINT = " (this MXNet is the CPU build, or CUDA sees no GPU)"

# the names mxnet 1.9.1's vision.get_model accepts (it keeps them in a local dict)
ZOO_MODELS = (
    *(f"resnet{depth}_v{version}" for version in (1, 2) for depth in (18, 34, 50, 101, 152)),
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
    "squeezenet1.0", "squeezenet1.1", "inceptionv3",
    "mobilenet1.0", "mobilenet0.75", "mobilenet0.5", "mobilenet0.25",
    "mobilenetv2_1.0", "mobilenetv2_0.75", "mobilenetv2_0.5", "mobilenetv2_0.25",
)


def model_names() -> list[str]:
    """Every model name the engine builds."""
    return [SMALL_CNN, *ZOO_MODELS]


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
    from lrf.gluon.data import load_dataset
    from lrf.gluon.experiment import build_network
    from lrf.gluon.models import save_parameters

    net, _, info, _ = build_network(setup)
    if info.num_holdout:
        load_dataset(setup.data_spec, "holdout")  # a download (cifar10) happens here
    params = os.path.join(folder, "init.params")
    save_parameters(net, params)
    say(f"initialised {setup.model} for {info.num_classes} classes of {info.image_shape} (seed {setup.seed})")
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
