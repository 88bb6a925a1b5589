"""Put data, model, device and learner together: what the CLI and the pipeline call.

Everything here takes small, plain values (a data text, a model name, a device
name, numbers, paths), so a Prefect task or a child process can call it with
what it was given.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

from lrf._validate import positive_int
from lrf.gluon import data as gdata
from lrf.gluon import models
from lrf.gluon.device import parse_device
from lrf.gluon.learner import GluonLearner
from lrf.result import SweepResult
from lrf.sweep import ProgressCallback, SweepConfig, find

log = logging.getLogger(__name__)

DEFAULT_DATA = "digits"


def default_model(data: str) -> str:
    """The small CNN for the offline digits, the reference ResNet-18 v2 for the rest."""
    return models.SMALL_CNN if gdata.parse_data_spec(data).source == "digits" else models.REFERENCE_MODEL


@dataclass(frozen=True)
class Setup:
    """What to train on, and where (SPEC §2-3). Validated at construction, cheaply.

    Attributes:
        data: a data-source text (see :mod:`lrf.gluon.data`), default "digits".
        model: a model name; None picks :func:`default_model` for the data.
        device: "cpu" (default), "gpu" or "gpu:N".
        batch_size: samples per batch (128, the reference).
        seed: seeds the initial weights and the batch order (42).
        workers: loader processes; None = one per CPU core (SPEC §3).
    """

    data: str = DEFAULT_DATA
    model: str | None = None
    device: str = "cpu"
    batch_size: int = 128
    seed: int = 42
    workers: int | None = None

    def __post_init__(self) -> None:
        gdata.validate_data_spec(gdata.parse_data_spec(self.data))
        if self.model is None:
            object.__setattr__(self, "model", default_model(self.data))
        models.check_model_name(self.model)
        parse_device(self.device)
        positive_int("batch_size", self.batch_size)
        positive_int("seed", self.seed, minimum=0)
        if self.workers is not None:
            positive_int("workers", self.workers, minimum=0)


def check_fits(setup: Setup, info: gdata.DatasetInfo) -> None:
    """Raise ValueError if a batch is larger than the training data (no batch could be drawn)."""
    if setup.batch_size > info.num_train:
        raise ValueError(
            f"batch_size must be at most the {info.num_train} training samples of data={setup.data!r}, "
            f"got batch_size={setup.batch_size}"
        )


def identity(setup: Setup) -> dict:
    """What determines the numbers a setup produces (the loader's worker count does not:
    the batch order comes from the seed alone)."""
    return {k: v for k, v in asdict(setup).items() if k != "workers"}


def build_network(setup: Setup, init_params: str | os.PathLike | None = None):
    """(net, dataset, info, ctx): a fresh network for ``setup``, from ``init_params`` if given."""
    dataset, info = gdata.load_dataset(setup.data, "train")
    net, ctx = _network(setup, info, init_params)
    return net, dataset, info, ctx


def _network(setup: Setup, info: gdata.DatasetInfo, init_params: str | os.PathLike | None):
    ctx = parse_device(setup.device)
    net = models.build_model(setup.model, info.num_classes, info.image_shape, ctx, seed=setup.seed)
    if init_params is not None:
        models.load_parameters(net, init_params, ctx)
    return net, ctx


def open_learner(setup: Setup, init_params: str | os.PathLike | None = None) -> GluonLearner:
    """A learner over ``setup`` with its endless loader; close it (or use ``with``).

    The loader, which forks its worker processes at once, is made before the network:
    forking before this process has run any MXNet operator (and started its OpenMP
    threads) keeps the workers clear of locks held by threads that do not survive a fork.
    """
    dataset, info = gdata.load_dataset(setup.data, "train")
    loader = gdata.make_batch_loader(dataset, setup.batch_size, setup.workers, seed=setup.seed)
    try:
        net, ctx = _network(setup, info, init_params)
        return GluonLearner(net, loader, ctx)
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
