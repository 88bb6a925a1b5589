"""Put data, model, device and learner together: the engine's in-process work.

Everything here takes a validated :class:`lrf.config.Setup` (completed by
:func:`lrf.engine.prepare_setup`) and paths, so a job process or a
worker can call it with what it was given: build a network, open a learner;
the sweep and the candidates' training over it are lrf's (:mod:`lrf.training`).
"""

from __future__ import annotations

import functools
import logging
import os

from mxnet import gluon
from mxnet.base import MXNetError

from lrf import training
from lrf.config import Setup
from lrf.gluon import data as gdata
from lrf.gluon import models
from lrf.gluon.device import parse_device
from lrf.gluon.learner import GluonLearner
from lrf.datasets import DatasetInfo
from lrf.recipe import Recipe, RecipeError, check_batch_fits, load_recipe, recipe_info

log = logging.getLogger(__name__)

INITIAL_LR = 0.001  # the optimizer's rate before the finder sets one (SPEC §2)
BUILTIN_RECIPE = "lrf.gluon.recipes:builtin"  # the data and model settings, as a recipe


def recipe_for(setup: Setup) -> Recipe:
    """What ``setup`` trains: its recipe's, or the built-in one's (data and model)."""
    return load_recipe(setup.recipe or BUILTIN_RECIPE, setup)


def build_network(setup: Setup, init_params: str | os.PathLike | None = None):
    """(net, dataset, info, ctx): a fresh network for ``setup``, from ``init_params`` if given."""
    recipe = recipe_for(setup)
    info = recipe_info(recipe, setup.recipe)
    net, ctx = _network(setup, recipe, info, init_params)
    return net, recipe.train, info, ctx


def _network(setup: Setup, recipe: Recipe, info: DatasetInfo, init_params: str | os.PathLike | None):
    ctx = parse_device(setup.device_spec)
    net = recipe.network
    if not isinstance(net, gluon.Block):
        raise RecipeError(f"recipe={setup.recipe!r}: its network must be a Gluon Block, got {type(net).__name__}")
    try:
        models.initialise(net, info.image_shape, ctx, setup.seed, recipe.initializer)
    except MXNetError as error:
        if setup.recipe is None:
            raise
        first = str(error).strip().splitlines()[0][:300]
        raise RecipeError(f"recipe={setup.recipe!r}: its network does not fit its data (one input of shape "
                         f"{info.image_shape}): {first}") from None
    if init_params is not None:
        models.load_parameters(net, init_params, ctx)
    return net, ctx


def open_learner(setup: Setup, init_params: str | os.PathLike | None = None, *, start: int = 0) -> GluonLearner:
    """A learner over ``setup`` with its endless loader; close it (or use ``with``).
    ``start`` skips that many batches of the seeded order (see :func:`lrf.gluon.data.make_batch_loader`).

    ``learner.info`` describes the data (split sizes, one input's shape), ``learner.holdout``
    is the held-out set (None without one). The loader,
    which forks its worker processes at once, is made before the network: forking
    before this process has run any MXNet operator (and started its OpenMP threads)
    keeps the workers clear of locks held by threads that do not survive a fork.
    """
    recipe = recipe_for(setup)
    info = recipe_info(recipe, setup.recipe)
    check_batch_fits(setup, info)
    loader = gdata.make_batch_loader(recipe.train, setup.batch_size, setup.loader_workers, seed=setup.seed, start=start)
    try:
        net, ctx = _network(setup, recipe, info, init_params)
        trainer = gluon.Trainer(net.collect_params(), setup.optimizer,
                                {"learning_rate": INITIAL_LR, **(setup.optimizer_params or {})})
        return GluonLearner(net, loader, ctx, trainer=trainer, loss=recipe.loss, info=info, holdout=recipe.holdout)
    except BaseException:
        gdata.close_loader(loader)
        raise


def initialise(setup: Setup, folder: str) -> tuple[str, str]:
    """The fresh, seeded initial parameters of ``setup``'s network, saved under ``folder``;
    and a line saying what was built."""
    net, _, info, _ = build_network(setup)  # both splits: a download (cifar10) happens here
    params = os.path.join(folder, "init.params")
    models.save_parameters(net, params)
    return params, f"initialised {setup.network} for inputs of shape {info.image_shape} (seed {setup.seed})"


# the engine-independent loops (lrf.training) over this engine's learner
run_sweep = functools.partial(training.run_sweep, open_learner)
train_at_rate = functools.partial(training.train_at_rate, open_learner)
