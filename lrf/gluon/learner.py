"""The Gluon learner (SPEC §2): one iteration at a given rate, snapshot, restore."""

from __future__ import annotations

import logging
from typing import Any, Iterable

import mxnet as mx
from mxnet import autograd, gluon

log = logging.getLogger(__name__)


class GluonLearner:
    """Owns the network, an endless batch stream, the device, the loss and the trainer.

    Args:
        net: an initialised (possibly lazily shaped) Gluon network.
        batches: an endless iterable of ``(data, label)`` batches (see
            :func:`lrf.gluon.data.make_batch_loader`); one iterator stays open over it.
        ctx: the device context.
        trainer: a ``gluon.Trainer`` over ``net``'s parameters; default plain SGD at
            learning rate 0.001 (SPEC §2).
        loss: default softmax cross-entropy.
        info: what the caller knows of the data (:class:`lrf.gluon.data.DatasetInfo`), kept
            for it as ``learner.info``.
        holdout: the held-out data set the caller evaluates on (None), kept as ``learner.holdout``.

    Raises:
        ValueError: the trainer's optimizer has an ``lr_scheduler`` (Gluon refuses to
            change the rate then, so a sweep could not set it).
    """

    def __init__(
        self,
        net: gluon.Block,
        batches: Iterable,
        ctx: mx.Context,
        *,
        trainer: gluon.Trainer | None = None,
        loss: gluon.loss.Loss | None = None,
        info: Any = None,
        holdout: Any = None,
    ):
        trainer = trainer or gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.001})
        if trainer.optimizer.lr_scheduler is not None:
            raise ValueError(
                f"trainer has an lr_scheduler ({type(trainer.optimizer.lr_scheduler).__name__}); "
                "the finder must set the rate itself: build the trainer without lr_scheduler"
            )
        self.net = net
        self.ctx = ctx
        self.trainer = trainer
        self.loss = loss or gluon.loss.SoftmaxCrossEntropyLoss()
        self.info = info
        self.holdout = holdout
        self._source = batches
        self._batches = iter(batches)

    def iteration(self, lr: float | None = None, take_step: bool = True) -> float:
        """Train on the next batch at ``lr`` (if given) and return its mean loss.

        With ``take_step=False`` this is a dry run that changes nothing in the model:
        a forward pass in inference mode, without backward. (MXNet's BatchNorm
        updates its running statistics during the backward pass, even when recorded
        with ``train_mode=False``: a backward would move them.) It still materialises
        lazy shapes, which is what the sweep needs it for.
        """
        if lr is not None and lr != self.trainer.learning_rate:
            self.trainer.set_learning_rate(lr)
        data, label = next(self._batches)
        data = data.as_in_context(self.ctx)
        label = label.as_in_context(self.ctx)
        if not take_step:
            loss = self.loss(self.net(data), label)
        else:
            with autograd.record():
                loss = self.loss(self.net(data), label)
            loss.backward()
            self.trainer.step(data.shape[0])  # gradients normalised by the batch size
        return float(loss.mean().asscalar())  # the one point where the host waits for the device

    def snapshot(self) -> tuple[dict[str, mx.nd.NDArray], bytes]:
        """In-memory copies of every parameter and of the trainer state (no files)."""
        params = {name: param.data().copy() for name, param in self.net.collect_params().items()}
        return params, self._updater().get_states(dump_optimizer=True)

    def restore(self, snapshot: tuple[dict[str, mx.nd.NDArray], bytes]) -> None:
        """Put parameters and trainer state back bit-for-bit (mirrors ``Trainer.load_states``),
        and zero the gradient buffers: they would otherwise hold the last iteration's
        gradient, which a caller accumulating gradients (``grad_req="add"``) would add to."""
        params, states = snapshot
        for name, param in self.net.collect_params().items():
            param.set_data(params[name])
            if param.grad_req != "null":
                param.zero_grad()
        trainer = self.trainer
        for updater in trainer._updaters:
            updater.set_states(states)
            updater.optimizer = trainer._updaters[0].optimizer
        trainer._optimizer = trainer._updaters[0].optimizer
        trainer._optimizer.param_dict = dict(enumerate(trainer._params))
        mx.nd.waitall()

    def save_state(self, path) -> None:
        """Write parameters and trainer state to ``path`` (one file, atomically), for a
        training to go on later in another process (:meth:`load_state`). Parameters are
        stored in order, not by name: Gluon's names carry per-process counters."""
        import numpy as np

        from lrf import _io

        params, states = self.snapshot()
        arrays = {f"param{i:05d}": array for i, array in enumerate(params.values())}
        arrays["trainer_states"] = mx.nd.array(np.frombuffer(states, dtype=np.uint8), dtype="uint8")
        with _io.atomic_path(path) as tmp:
            mx.nd.save(str(tmp), arrays)

    def load_state(self, path) -> None:
        """Put back what :meth:`save_state` wrote (the same architecture), bit for bit."""
        arrays = mx.nd.load(str(path))
        names = list(self.net.collect_params().keys())
        stored = sorted(k for k in arrays if k.startswith("param"))
        if len(stored) != len(names):
            raise ValueError(f"state file {path} holds {len(stored)} parameters, this network has {len(names)}")
        params = {name: arrays[key] for name, key in zip(names, stored)}
        self.restore((params, arrays["trainer_states"].asnumpy().tobytes()))

    def evaluate(self, dataset, batch_size: int) -> tuple[float, float | None]:
        """Mean loss and accuracy of the network on ``dataset``, in inference mode (accuracy:
        None unless the outputs are class scores and the labels classes)."""
        from lrf.gluon.data import make_eval_loader

        total_loss, correct, count, classes = 0.0, 0, 0, True
        for data, label in make_eval_loader(dataset, batch_size):
            data, label = data.as_in_context(self.ctx), label.as_in_context(self.ctx)
            output = self.net(data)
            total_loss += float(self.loss(output, label).sum().asscalar())
            classes = classes and output.ndim == 2 and label.ndim == 1
            if classes:
                correct += int((output.argmax(axis=1) == label.astype(output.dtype)).sum().asscalar())
            count += data.shape[0]
        return total_loss / count, correct / count if classes else None

    def close(self) -> None:
        """Stop the batch stream's worker processes (if any)."""
        from lrf.gluon.data import close_loader

        close_loader(self._source)

    def __enter__(self) -> "GluonLearner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _updater(self):
        trainer = self.trainer
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        if trainer._update_on_kvstore:
            raise ValueError("trainer updates on a kvstore (multi-device); lrf snapshots single-device trainers only")
        return trainer._updaters[0]
