"""The PyTorch learner (SPEC §2): one iteration at a given rate, snapshot, restore."""

from __future__ import annotations

import copy
from typing import Any, Iterable

import torch
from torch import nn


class TorchLearner:
    """Owns the network, an endless batch stream, the device, the loss and the optimizer.

    Args:
        net: an initialised network (:func:`lrf.pytorch.models.initialise`), on ``device``.
        batches: an endless iterable of ``(data, label)`` batches (see
            :func:`lrf.pytorch.data.make_batch_loader`); one iterator stays open over it.
        device: the ``torch.device``.
        optimizer: a ``torch.optim.Optimizer`` over ``net``'s parameters; the finder sets the
            rate of every parameter group.
        loss: called as ``loss(output, label)``; its mean over the batch is minimised
            (default cross-entropy).
        info: what the caller knows of the data (:class:`lrf.datasets.DatasetInfo`), kept
            for it as ``learner.info``.
        holdout: the held-out data set the caller evaluates on (None), kept as ``learner.holdout``.
    """

    def __init__(self, net: nn.Module, batches: Iterable, device: torch.device, *, optimizer: torch.optim.Optimizer,
                 loss=None, info: Any = None, holdout: Any = None):
        self.net = net
        self.device = device
        self.optimizer = optimizer
        self.loss = loss or nn.CrossEntropyLoss()
        self.info = info
        self.holdout = holdout
        self._source = batches
        self._batches = iter(batches)

    def iteration(self, lr: float | None = None, take_step: bool = True) -> float:
        """Train on the next batch at ``lr`` (if given) and return its mean loss.

        With ``take_step=False`` this is a dry run that changes nothing in the model: a
        forward pass in inference mode (BatchNorm reads its running statistics, does not
        move them), without gradients.
        """
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        data, label = next(self._batches)
        data = data.to(self.device, non_blocking=True)
        label = label.to(self.device, non_blocking=True)
        if not take_step:
            was_training = self.net.training
            self.net.eval()
            try:
                with torch.no_grad():
                    loss = self.loss(self.net(data), label).mean()
            finally:
                self.net.train(was_training)
        else:
            self.net.train()
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.net(data), label).mean()  # a per-sample loss is averaged, as Gluon's trainer does
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())  # the one point where the host waits for the device

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict]:
        """In-memory copies of every parameter and buffer (BatchNorm's statistics and counter)
        and of the optimizer's state and settings (no files)."""
        params = {name: value.detach().clone() for name, value in self.net.state_dict().items()}
        return params, copy.deepcopy(self.optimizer.state_dict())

    def restore(self, snapshot: tuple[dict[str, torch.Tensor], dict]) -> None:
        """Put parameters, buffers and optimizer state back bit-for-bit, and drop the gradients
        (they hold the last iteration's). The optimizer gets copies: ``load_state_dict``
        keeps tensors it is given, and its next step would change them in place, and so
        the snapshot."""
        params, states = snapshot
        with torch.no_grad():
            self.net.load_state_dict(params, strict=True)  # copies into the existing tensors
        self.optimizer.load_state_dict(copy.deepcopy(states))
        self.optimizer.zero_grad(set_to_none=True)
        self.net.zero_grad(set_to_none=True)

    def save_state(self, path) -> None:
        """Write parameters, buffers, optimizer state and torch's random state (dropout's masks
        go on from where they were) to ``path`` (one file, atomically), for a training to go
        on later in another process (:meth:`load_state`)."""
        from lrf import _io

        params, states = self.snapshot()
        with _io.atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save({"net": params, "optimizer": states, "rng": self._rng_state()}, handle)

    def load_state(self, path) -> None:
        """Put back what :meth:`save_state` wrote (the same architecture), bit for bit."""
        # to the CPU: the network copies onto its device, and the optimizer moves its state to
        # each parameter's but keeps Adam's step counters where they are loaded (on a GPU,
        # reading them back would wait for it at every step)
        saved = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.restore((saved["net"], saved["optimizer"]))
        except (KeyError, RuntimeError) as error:
            raise ValueError(f"state file {path} does not fit this network: {error}") from None
        rng = saved.get("rng", {})
        if "cpu" in rng:
            torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def evaluate(self, dataset, batch_size: int) -> tuple[float, float | None]:
        """Mean loss and accuracy of the network on ``dataset``, in inference mode (accuracy:
        None unless the outputs are class scores and the labels classes)."""
        from lrf.pytorch.data import make_eval_loader

        total_loss, correct, count, classes = 0.0, 0, 0, True
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                for data, label in make_eval_loader(dataset, batch_size):
                    data, label = data.to(self.device), label.to(self.device)
                    output = self.net(data)
                    total_loss += float(self.loss(output, label).mean()) * data.shape[0]
                    classes = classes and output.ndim == 2 and label.ndim == 1
                    if classes:
                        correct += int((output.argmax(dim=1) == label).sum())
                    count += data.shape[0]
        finally:
            self.net.train(was_training)
        return total_loss / count, correct / count if classes else None

    def close(self) -> None:
        """Stop the batch stream's worker processes (if any)."""
        from lrf.pytorch.data import close_loader

        close_loader(self._batches)

    def __enter__(self) -> "TorchLearner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
