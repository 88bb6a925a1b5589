"""Checking a pick (SPEC §7): train a fresh network from the saved initial
parameters at one constant rate, on the same batch sequence as every other
candidate, and report how far it got. (Parallel candidates run in separate
processes: see :mod:`lrf.gluon.jobs`.)
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable

from lrf._validate import positive_float, positive_int
from lrf.check import CandidateResult

log = logging.getLogger(__name__)


def train_candidate(
    setup,
    init_params: str | os.PathLike,
    lr: float,
    iterations: int = 500,
    last_k: int = 20,
    log_every: int = 100,
    report: Callable[[str], None] = log.info,
) -> CandidateResult:
    """Train ``iterations`` batches at the constant rate ``lr`` from ``init_params``.

    Args:
        setup: a :class:`lrf.gluon.experiment.Setup` (data, model, device, batch size,
            seed: the seed fixes the batch order, the same for every candidate).
        init_params: the saved initial parameters every candidate starts from.
        lr: the constant learning rate.
        iterations: batches to train (500, SPEC §7).
        last_k: also report the mean loss of the last ``last_k`` iterations (20).
        log_every: report the loss every this many iterations (100, SPEC §7).
        report: where the progress lines go.
    """
    from lrf.gluon import data as gdata
    from lrf.gluon.experiment import open_learner

    lr = positive_float("lr", lr)
    iterations = positive_int("iterations", iterations)
    last_k = positive_int("last_k", last_k)
    started = time.perf_counter()
    losses: list[float] = []
    with open_learner(setup, init_params) as learner:
        for step in range(iterations):
            loss = learner.iteration(lr)
            losses.append(loss)
            if not math.isfinite(loss):
                report(f"lr={lr:.4g}: loss {loss} at iteration {step + 1}: diverged, stopping")
                break
            if (step + 1) % log_every == 0 or step + 1 == iterations:
                report(f"lr={lr:.4g}: iteration {step + 1}/{iterations} loss {loss:.4f}")
        holdout_loss = holdout_accuracy = None
        _, info = gdata.load_dataset(setup.data, "train")
        if info.num_holdout and math.isfinite(losses[-1]):
            holdout, _ = gdata.load_dataset(setup.data, "holdout")
            holdout_loss, holdout_accuracy = evaluate(learner, holdout, setup.batch_size)
    tail = losses[-last_k:]
    diverged = not math.isfinite(losses[-1])
    return CandidateResult(
        lr=lr, iterations=iterations, losses=tuple(losses), final_loss=math.nan if diverged else losses[-1],
        last_k=last_k, mean_last_k=math.nan if diverged else sum(tail) / len(tail), holdout_loss=holdout_loss,
        holdout_accuracy=holdout_accuracy, seconds=round(time.perf_counter() - started, 3),
    )


def evaluate(learner, dataset, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy of ``learner.net`` on ``dataset``, in inference mode."""
    from lrf.gluon.data import make_eval_loader

    total_loss, correct, count = 0.0, 0, 0
    for data, label in make_eval_loader(dataset, batch_size):
        data, label = data.as_in_context(learner.ctx), label.as_in_context(learner.ctx)
        output = learner.net(data)
        total_loss += float(learner.loss(output, label).sum().asscalar())
        correct += int((output.argmax(axis=1) == label.astype(output.dtype)).sum().asscalar())
        count += data.shape[0]
    return total_loss / count, correct / count
