"""Helpers over the library's engine that several benchmarks share (MXNet imported here)."""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from benchmarks._common import timed
from lrf.config import Setup
from lrf.gluon import data as gdata
from lrf.gluon.experiment import build_network
from lrf.gluon.learner import GluonLearner


def make_loader(setup: Setup, loader_workers: int | None | str = "setup"):
    """The endless loader :func:`lrf.gluon.experiment.open_learner` would make for ``setup``.

    Make every loader a benchmark needs before its first network: the loader forks its
    workers at once, and the library forks before any MXNet operator has run (a fork
    after MXNet's threads have started can leave a worker holding a lock nobody frees).
    """
    dataset, _ = gdata.load_dataset(setup.data_spec, "train")
    count = setup.loader_workers if loader_workers == "setup" else loader_workers
    return gdata.make_batch_loader(dataset, setup.batch_size, count, seed=setup.seed)


class Rig:
    """A learner built the way :func:`lrf.gluon.experiment.open_learner` builds it (loader
    first, then the network), but over a batch stream the benchmark holds too, so a
    hand-written loop can draw from the same stream."""

    def __init__(self, setup: Setup, *, loader=None, trainer_args: dict | None = None):
        self.setup = setup
        self.loader = loader if loader is not None else make_loader(setup)
        self.net, self.dataset, self.info, self.ctx = build_network(setup)
        self.stream = iter(self.loader)
        trainer = None
        if trainer_args is not None:
            trainer = gluon.Trainer(self.net.collect_params(), "sgd", trainer_args)
        self.learner = GluonLearner(self.net, self.stream, self.ctx, trainer=trainer)

    def close(self) -> None:
        gdata.close_loader(self.loader)

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def train_no_sync(self, lrs) -> None:
        """``learner.iteration`` without the per-iteration ``asscalar``: the host queues every
        iteration and waits once at the end (what a loop that does not read the loss could do)."""
        net, trainer, loss_fn, ctx = self.net, self.learner.trainer, self.learner.loss, self.ctx
        pending = []
        for lr in lrs:
            if lr != trainer.learning_rate:
                trainer.set_learning_rate(lr)
            data, label = next(self.stream)
            data, label = data.as_in_context(ctx), label.as_in_context(ctx)
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(data.shape[0])
            pending.append(loss.mean())
        mx.nd.waitall()

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        """Snapshot before, restore after (outside whatever the block times)."""
        snapshot = self.learner.snapshot()
        mx.nd.waitall()
        try:
            yield
        finally:
            self.learner.restore(snapshot)


def fixed_batch_learner(rig: Rig) -> GluonLearner:
    """A learner over ``rig``'s network and trainer that trains on one batch for ever:
    the training loop's own speed, with no data loading at all."""
    batch = next(rig.stream)
    return GluonLearner(rig.net, itertools.repeat(batch), rig.ctx, trainer=rig.learner.trainer, loss=rig.learner.loss)


def nbytes(array: mx.nd.NDArray) -> int:
    return int(array.size) * np.dtype(array.dtype).itemsize


def state_bytes(state) -> int:
    """Bytes of an optimizer state (an NDArray, None, or nested tuples/lists of them)."""
    if state is None:
        return 0
    if isinstance(state, mx.nd.NDArray):
        return nbytes(state)
    if isinstance(state, (tuple, list)):
        return sum(state_bytes(s) for s in state)
    return 0


def sync() -> None:
    mx.nd.waitall()


def snapshot_timers(learner, state: dict):
    """Timed ``snapshot()`` and ``restore()`` of ``learner``; the snapshot is kept in
    ``state["snapshot"]`` for the next restore."""

    def snapshot() -> float:
        return timed(lambda: state.update(snapshot=learner.snapshot()), wait=sync)

    def restore() -> float:
        return timed(lambda: learner.restore(state["snapshot"]), wait=sync)

    return snapshot, restore


def cifar_with_small_holdout(folder, holdout: int = 2000) -> str:
    """A ``rec:`` data text for the CIFAR-10 training file with a smaller held-out split.

    The training records are the shared files (symbolic links); the holdout is the
    first ``holdout`` of the 10,000 test records, copied. The library finds it the
    usual way, as the sibling ``test.rec`` of ``train.rec``. The full test set costs
    about a quarter of a 100-iteration ResNet training per evaluation; 2,000 images
    still rank the candidates.
    """
    import os
    from pathlib import Path

    from benchmarks._common import CIFAR_TRAIN_REC

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".rec", ".idx"):
        link = folder / f"train{suffix}"
        if not link.exists():
            os.symlink(CIFAR_TRAIN_REC.with_suffix(suffix), link)
    test = CIFAR_TRAIN_REC.with_name("test.rec")
    if (folder / "test.rec").exists() and (folder / "test.idx").exists():
        # written by an earlier run: rewriting it would change its modification time, which is
        # part of the data's fingerprint, and void every cached result keyed on it
        return f"rec:{folder / 'train.rec'}"
    source = mx.recordio.MXIndexedRecordIO(str(test.with_suffix(".idx")), str(test), "r")
    target = mx.recordio.MXIndexedRecordIO(str(folder / "test.idx"), str(folder / "test.rec"), "w")
    try:
        for key in source.keys[:holdout]:
            target.write_idx(key, source.read_idx(key))
    finally:
        source.close()
        target.close()
    return f"rec:{folder / 'train.rec'}"
