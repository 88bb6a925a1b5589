"""Put data, model, device and learner together: the PyTorch engine's in-process work.

The same contract as :mod:`lrf.gluon.experiment` (see :mod:`lrf.training`): everything
takes a validated :class:`lrf.config.Setup` and paths; the sweep and the candidates'
training are lrf's loops over the learner opened here.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

from lrf import training
from lrf.config import DeviceSpec, Setup
from lrf.datasets import DatasetInfo
from lrf.engine import check_device
from lrf.pytorch import data as tdata
from lrf.pytorch import models
from lrf.pytorch.engine import NO_GPU_HINT, OPTIMIZER_CLASSES
from lrf.pytorch.learner import TorchLearner
from lrf.recipe import Recipe, RecipeError, check_batch_fits, load_recipe, recipe_info

INITIAL_LR = 0.001  # the optimizer's rate before the finder sets one (SPEC §2)
BUILTIN_RECIPE = "lrf.pytorch.recipes:builtin"  # the data and model settings, as a recipe


def recipe_for(setup: Setup) -> Recipe:
    """What ``setup`` trains: its recipe's, or the built-in one's (data and model)."""
    return load_recipe(setup.recipe or BUILTIN_RECIPE, setup)


def parse_device(spec: DeviceSpec) -> torch.device:
    """The torch device of ``cpu`` or ``gpu:N`` (CUDA's N-th visible GPU); a ValueError naming
    ``device`` when torch sees no such GPU."""
    if spec.kind == "cpu":
        return torch.device("cpu")
    check_device(spec, str(spec), torch.cuda.device_count() if torch.cuda.is_available() else 0, NO_GPU_HINT)
    return torch.device("cuda", spec.index)


def make_optimizer(name: str, params, settings: dict | None) -> torch.optim.Optimizer:
    """torch.optim's optimizer ``name`` over ``params`` at :data:`INITIAL_LR` with ``settings``
    (checked by :func:`lrf.pytorch.engine.check_optimizer`; ``beta1``/``beta2`` are its ``betas``)."""
    settings = dict(settings or {})
    if "beta1" in settings or "beta2" in settings:
        settings["betas"] = (settings.pop("beta1", 0.9), settings.pop("beta2", 0.999))  # torch's defaults
    try:
        return getattr(torch.optim, OPTIMIZER_CLASSES[name])(params, lr=INITIAL_LR, **settings)
    except (ValueError, TypeError) as error:  # torch's own checks, e.g. nesterov without momentum
        raise ValueError(f"optimizer={name!r} with optimizer_params={settings!r}: {error}") from None


def _network(setup: Setup, recipe: Recipe, info: DatasetInfo, init_params: str | os.PathLike | None):
    device = parse_device(setup.device_spec)
    net = recipe.network
    if not isinstance(net, nn.Module):
        raise RecipeError(f"recipe={setup.recipe!r}: its network must be a torch.nn.Module, got {type(net).__name__}")
    try:  # built and drawn on the CPU: a shape error here is the network's, not the device's
        models.initialise(net, info.image_shape, torch.device("cpu"), setup.seed, recipe.initializer)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0][:300]
        where = f"recipe={setup.recipe!r}: its network" if setup.recipe else f"model={setup.model!r}"
        raise (RecipeError if setup.recipe else ValueError)(
            f"{where} does not fit the data (one input of shape {info.image_shape}): {first}") from None
    net.to(device)  # the GPU's own errors (out of memory, no code for it) as torch raises them
    if init_params is not None:
        models.load_parameters(net, init_params, device)
    return net, device


def build_network(setup: Setup, init_params: str | os.PathLike | None = None):
    """(net, dataset, info, device): a fresh network for ``setup``, from ``init_params`` if given."""
    recipe = recipe_for(setup)
    info = recipe_info(recipe, setup.recipe)
    net, device = _network(setup, recipe, info, init_params)
    return net, recipe.train, info, device


def open_learner(setup: Setup, init_params: str | os.PathLike | None = None, *, start: int = 0) -> TorchLearner:
    """A learner over ``setup`` with its endless loader; close it (or use ``with``).
    ``start`` skips that many batches of the seeded order (:func:`lrf.sampler.seeded_batches`)."""
    recipe = recipe_for(setup)
    info = recipe_info(recipe, setup.recipe)
    check_batch_fits(setup, info)
    loader = tdata.make_batch_loader(recipe.train, setup.batch_size, setup.loader_workers, seed=setup.seed, start=start)
    try:
        net, device = _network(setup, recipe, info, init_params)
        optimizer = make_optimizer(setup.optimizer, net.parameters(), setup.optimizer_params)
        return TorchLearner(net, loader, device, optimizer=optimizer, loss=recipe.loss, info=info,
                            holdout=recipe.holdout)
    except BaseException:
        tdata.close_loader(loader)
        raise


def initialise(setup: Setup, folder: str) -> tuple[str, str]:
    """The fresh, seeded initial parameters of ``setup``'s network, saved under ``folder``;
    and a line saying what was built."""
    net, _, info, _ = build_network(setup)
    params = os.path.join(folder, "init.pt")
    models.save_parameters(net, params)
    return params, f"initialised {setup.network} for inputs of shape {info.image_shape} (seed {setup.seed})"


# the engine-independent loops (lrf.training) over this engine's learner
run_sweep = functools.partial(training.run_sweep, open_learner)
train_at_rate = functools.partial(training.train_at_rate, open_learner)
