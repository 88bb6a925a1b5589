"""Checking a pick (SPEC §7): train a fresh network from the saved initial
parameters at one constant rate, on the same batch sequence as every other
candidate, and report how far it got.

MXNet's Python front end is not thread-safe, so parallel candidates run in
separate processes: :func:`train_in_child` runs this module as a script and
reads back its JSON, which is written atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from lrf import _io
from lrf._validate import positive_float, positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's training: every loss, the final one, and held-out figures.

    ``losses`` ends early (and ``final_loss`` is NaN) if a loss was not finite:
    training on stops there, since nothing finite follows a NaN in SGD.
    """

    lr: float
    iterations: int
    losses: tuple[float, ...]
    final_loss: float
    last_k: int
    mean_last_k: float
    holdout_loss: float | None
    holdout_accuracy: float | None
    seconds: float

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.final_loss)

    def to_json(self) -> str:
        data = asdict(self)
        data["losses"] = [_io.json_float(v) for v in data["losses"]]
        data["final_loss"], data["mean_last_k"] = _io.json_float(self.final_loss), _io.json_float(self.mean_last_k)
        return json.dumps(data, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "CandidateResult":
        data = json.loads(text)
        data["losses"] = tuple(float(v) for v in data["losses"])
        data["final_loss"], data["mean_last_k"] = float(data["final_loss"]), float(data["mean_last_k"])
        return cls(**data)


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
    return CandidateResult(
        lr=lr, iterations=iterations, losses=tuple(losses), final_loss=losses[-1] if math.isfinite(losses[-1]) else math.nan,
        last_k=last_k, mean_last_k=sum(tail) / len(tail), holdout_loss=holdout_loss,
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


# --- running in a child process ------------------------------------------------------


def train_in_child(
    setup,
    init_params: str | os.PathLike,
    lr: float,
    out: str | os.PathLike,
    *,
    iterations: int = 500,
    last_k: int = 20,
    threads: int | None = None,
    report: Callable[[str], None] = log.info,
) -> CandidateResult:
    """:func:`train_candidate` in a fresh Python process; its lines go to ``report``.

    Args:
        out: where the child writes its :class:`CandidateResult` JSON (atomically).
        threads: MXNet/OpenMP threads for the child (None: MXNet's default); set it
            to cores / parallel candidates so parallel children do not oversubscribe.

    Raises:
        RuntimeError: the child failed or was killed; the message has its exit status
            and its last lines.
    """
    from dataclasses import asdict as as_dict

    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MXNET_CPU_WORKER_NTHREADS"] = str(positive_int("threads", threads))
    command = [
        sys.executable, "-m", "lrf.gluon.candidates", "--setup", json.dumps(as_dict(setup)),
        "--init-params", str(init_params), "--lr", repr(float(lr)), "--iterations", str(iterations),
        "--last-k", str(last_k), "--out", str(out),
    ]
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as child:
        assert child.stdout is not None
        for line in child.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            if line.startswith("lr="):
                report(line)
    if child.returncode != 0:
        raise RuntimeError(
            f"candidate lr={lr!r} failed in its process (exit status {child.returncode}):\n" + "\n".join(tail)
        )
    return CandidateResult.from_json(Path(out).read_text(encoding="utf-8"))


def _main(argv: list[str] | None = None) -> int:
    from lrf.gluon.experiment import Setup

    parser = argparse.ArgumentParser(description="Train one candidate rate (used by train_in_child).")
    parser.add_argument("--setup", required=True, help="Setup as JSON")
    parser.add_argument("--init-params", required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--last-k", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    setup = Setup(**json.loads(args.setup))
    result = train_candidate(setup, args.init_params, args.lr, args.iterations, args.last_k,
                             report=lambda line: print(line, flush=True))
    _io.write_text(args.out, result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
