"""Put data, model, device and learner together: the engine's in-process work.

Everything here takes a validated :class:`lrf.config.Setup` (completed by
:func:`lrf.engine.prepare_setup`) and paths, so a job process or a
worker can call it with what it was given: build a network, open a learner,
sweep, train one candidate rate and evaluate it on the held-out split.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable

from mxnet import gluon
from mxnet.base import MXNetError

from lrf._signals import raise_if_interrupted
from lrf.candidates import CandidateResult, mean_of_last
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.gluon import data as gdata
from lrf.gluon import models
from lrf.gluon.device import parse_device
from lrf.gluon.learner import GluonLearner
from lrf.recipe import Recipe, RecipeError, load_recipe
from lrf.result import SweepResult
from lrf.sweep import ProgressCallback, find

log = logging.getLogger(__name__)

INITIAL_LR = 0.001  # the optimizer's rate before the finder sets one (SPEC §2)
BUILTIN_RECIPE = "lrf.gluon.recipes:builtin"  # the data and model settings, as a recipe
LOG_EVERY = 100  # a candidate's loss is reported every this many iterations (SPEC §7)


def recipe_for(setup: Setup) -> Recipe:
    """What ``setup`` trains: its recipe's, or the built-in one's (data and model)."""
    return load_recipe(setup.recipe or BUILTIN_RECIPE, setup)


def build_network(setup: Setup, init_params: str | os.PathLike | None = None):
    """(net, dataset, info, ctx): a fresh network for ``setup``, from ``init_params`` if given."""
    recipe = recipe_for(setup)
    info = _info(recipe, setup.recipe)
    net, ctx = _network(setup, recipe, info, init_params)
    return net, recipe.train, info, ctx


def _info(recipe: Recipe, name: str | None) -> gdata.DatasetInfo:
    """The sizes of the recipe's splits and one input's shape."""
    shape = recipe.input_shape
    if shape is None:
        try:
            shape = recipe.train[0][0].shape
        except ValueError:
            raise
        except Exception as error:  # the user's data set: whatever it raises, say where
            raise RecipeError(f"recipe={name!r}: its train set's first item cannot be read as (input, label): "
                             f"{type(error).__name__}: {error}") from None
    return gdata.DatasetInfo(num_train=len(recipe.train), num_holdout=0 if recipe.holdout is None else len(recipe.holdout),
                             image_shape=tuple(shape))


def _network(setup: Setup, recipe: Recipe, info: gdata.DatasetInfo, init_params: str | os.PathLike | None):
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
    info = _info(recipe, setup.recipe)
    if setup.batch_size > info.num_train:
        raise ValueError(f"batch_size must be at most the {info.num_train} training samples of the data, "
                         f"got batch_size={setup.batch_size} (recipe={setup.recipe!r})")
    loader = gdata.make_batch_loader(recipe.train, setup.batch_size, setup.loader_workers, seed=setup.seed, start=start)
    try:
        net, ctx = _network(setup, recipe, info, init_params)
        trainer = gluon.Trainer(net.collect_params(), setup.optimizer,
                                {"learning_rate": INITIAL_LR, **(setup.optimizer_params or {})})
        return GluonLearner(net, loader, ctx, trainer=trainer, loss=recipe.loss, info=info, holdout=recipe.holdout)
    except BaseException:
        gdata.close_loader(loader)
        raise


def run_sweep(
    setup: Setup,
    config: SweepConfig | None = None,
    *,
    init_params: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> SweepResult:
    """Build everything for ``setup``, sweep, close the loader; return the result."""
    with open_learner(setup, init_params) as learner:
        return find(learner, config, progress=progress)


def train_at_rate(
    setup: Setup,
    init_params: str | os.PathLike,
    lr: float,
    iterations: int = CandidatePlan.iterations,
    last_k: int = CandidatePlan.last_k,
    report: Callable[[str], None] = log.info,
    *,
    start: int = 0,
    resume_from: str | os.PathLike | None = None,
    state_out: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> CandidateResult:
    """Check one candidate rate (SPEC §7): train ``iterations`` batches at the constant rate
    ``lr`` from ``init_params`` and evaluate on the held-out split, if the data has one.

    A training can stop and go on later (the refine plan's rungs): ``state_out`` saves
    parameters and trainer state at the end; ``resume_from`` (with ``start``, the
    iterations done so far) goes on from such a state, on the batches that follow.

    Args:
        setup: data, model, device, batch size and seed (the seed fixes the batch order:
            every candidate sees the same batches, so candidates differ only in the rate).
        init_params: the saved initial parameters every candidate starts from.
        lr: the constant learning rate (> 0: the caller validated it, as part of a plan).
        iterations: batches to train (500, SPEC §7).
        last_k: also report the mean loss of the last ``last_k`` iterations (20).
        report: where the progress lines go (every :data:`LOG_EVERY` iterations).
        start, resume_from, state_out: see above (0, None, None).
        progress: called with the number of iterations done after each one (None).

    Returns:
        the result of these ``iterations`` (``iterations`` counts them, not ``start``).
    """
    if (start > 0) != (resume_from is not None):
        raise ValueError(f"start and resume_from go together, got start={start!r}, resume_from={resume_from!r}")
    started = time.perf_counter()
    losses: list[float] = []
    end = start + iterations
    with open_learner(setup, init_params, start=start) as learner:
        if resume_from is not None:
            learner.load_state(resume_from)
        for step in range(start, end):
            raise_if_interrupted()  # a Ctrl-C swallowed by a destructor stops the training here
            loss = learner.iteration(lr)
            losses.append(loss)
            if progress is not None:
                progress(len(losses))
            if not math.isfinite(loss):
                report(f"lr={lr:.4g}: loss {loss} at iteration {step + 1}: diverged, stopping")
                break
            if (step + 1) % LOG_EVERY == 0 or step + 1 == end:
                report(f"lr={lr:.4g}: iteration {step + 1}/{end} loss {loss:.4f}")
        if state_out is not None and math.isfinite(losses[-1]):
            learner.save_state(state_out)
        holdout_loss = holdout_accuracy = None
        if learner.holdout is not None and math.isfinite(losses[-1]):
            holdout_loss, holdout_accuracy = evaluate(learner, learner.holdout, setup.batch_size)
    diverged = not math.isfinite(losses[-1])
    return CandidateResult(
        lr=lr, iterations=iterations, losses=tuple(losses), final_loss=math.nan if diverged else losses[-1],
        last_k=last_k, mean_last_k=mean_of_last(losses, last_k), holdout_loss=holdout_loss,
        holdout_accuracy=holdout_accuracy, seconds=round(time.perf_counter() - started, 3),
    )


def evaluate(learner: GluonLearner, dataset, batch_size: int) -> tuple[float, float | None]:
    """Mean loss and accuracy of ``learner.net`` on ``dataset``, in inference mode (accuracy:
    None unless the outputs are class scores and the labels classes)."""
    total_loss, correct, count, classes = 0.0, 0, 0, True
    for data, label in gdata.make_eval_loader(dataset, batch_size):
        data, label = data.as_in_context(learner.ctx), label.as_in_context(learner.ctx)
        output = learner.net(data)
        total_loss += float(learner.loss(output, label).sum().asscalar())
        classes = classes and output.ndim == 2 and label.ndim == 1
        if classes:
            correct += int((output.argmax(axis=1) == label.astype(output.dtype)).sum().asscalar())
        count += data.shape[0]
    return total_loss / count, correct / count if classes else None
