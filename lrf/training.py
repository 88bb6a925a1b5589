"""The work of an engine's jobs, written once for every engine: the sweep and one candidate's
training over a learner, and the job functions :mod:`lrf.jobs` runs where it placed them.

Framework-free. An engine supplies an *experiment* module (MXNet's:
:mod:`lrf.gluon.experiment`), imported only when a job runs, with:

- ``open_learner(setup, init_params=None, *, start=0)``: a learner over ``setup`` (a context
  manager) with the :class:`lrf.learner.Learner` methods and ``save_state(path)``,
  ``load_state(path)``, ``evaluate(dataset, batch_size) -> (loss, accuracy or None)`` and
  ``holdout`` (the held-out set, None without one);
- ``initialise(setup, folder) -> (path, message)``: the fresh, seeded initial parameters
  written under ``folder``, and a line saying what was built.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from typing import Callable

from lrf._signals import raise_if_interrupted
from lrf.candidates import CandidateResult, mean_of_last
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.result import SweepResult
from lrf.sweep import ProgressCallback, find

log = logging.getLogger(__name__)

LOG_EVERY = 100  # a candidate's loss is reported every this many iterations (SPEC §7)


def run_sweep(
    open_learner,
    setup: Setup,
    config: SweepConfig | None = None,
    *,
    init_params: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> SweepResult:
    """Open a learner over ``setup``, sweep, close it; return the result."""
    with open_learner(setup, init_params) as learner:
        return find(learner, config, progress=progress)


def train_at_rate(
    open_learner,
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
    parameters and optimizer state at the end; ``resume_from`` (with ``start``, the
    iterations done so far) goes on from such a state, on the batches that follow.

    Args:
        open_learner: the engine's (see the module's docstring).
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
            holdout_loss, holdout_accuracy = learner.evaluate(learner.holdout, setup.batch_size)
    diverged = not math.isfinite(losses[-1])
    return CandidateResult(
        lr=lr, iterations=iterations, losses=tuple(losses), final_loss=math.nan if diverged else losses[-1],
        last_k=last_k, mean_last_k=mean_of_last(losses, last_k), holdout_loss=holdout_loss,
        holdout_accuracy=holdout_accuracy, seconds=round(time.perf_counter() - started, 3),
    )


# --- the jobs, where they were placed (lrf.jobs.work_on_worker calls them) -------------------


def engine_jobs(experiment: str) -> dict:
    """``{"init" | "sweep" | "candidate": work(setup, args, paths, folder, say)}`` over the engine's
    experiment module (its import path: imported when a job runs, not before)."""

    def initialise(setup: Setup, args: dict, paths: dict, folder: str, say):
        params, message = importlib.import_module(experiment).initialise(setup, folder)
        say(message)
        return None, {"params": params}

    def sweep(setup: Setup, args: dict, paths: dict, folder: str, say):
        every = args["report_every"]
        config = SweepConfig.from_dict(args["config"])
        total = max(1, config.expected_iterations())  # an upper bound: divergence usually ends it sooner

        def progress(p) -> None:
            say.done((p.iteration + 1) / total)
            if p.iteration % every == 0:
                say(f"iteration {p.iteration} lr={p.lr:.4g} loss={p.loss:.4f} smoothed_loss={p.smoothed_loss:.4f}")

        result = run_sweep(importlib.import_module(experiment).open_learner, setup, config,
                           init_params=paths["init_params"], progress=progress)
        say.done(1.0)
        say(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value} at lr={result.lrs[-1]:.4g}")
        return result.to_json(), {}

    def candidate(setup: Setup, args: dict, paths: dict, folder: str, say):
        state = os.path.join(folder, "state") if args["saves_state"] else None
        total = max(1, args["iterations"])
        result = train_at_rate(importlib.import_module(experiment).open_learner, setup, paths["init_params"],
                               args["lr"], args["iterations"], args["last_k"], report=say, start=args["start"],
                               resume_from=paths.get("resume_from"), state_out=state,
                               progress=lambda count: say.done(count / total))
        files = {"state": state} if state is not None and not result.diverged else {}
        return result.to_json(), files

    return {"init": initialise, "sweep": sweep, "candidate": candidate}
