"""The built-in recipe (:mod:`lrf.recipe`) of the PyTorch engine: the data sources and models
lrf ships, as a user's recipe would give them."""

from __future__ import annotations

from torch import nn

from lrf.config import Setup
from lrf.pytorch import data as tdata
from lrf.pytorch import models
from lrf.recipe import Recipe


def builtin(setup: Setup) -> Recipe:
    """``setup.data``'s data set (and its held-out split, when it has one), ``setup.model``
    for its classes, cross-entropy and PyTorch's default initialisation."""
    train, info = tdata.load_dataset(setup.data_spec, "train")
    holdout = tdata.load_dataset(setup.data_spec, "holdout")[0] if info.num_holdout else None
    return Recipe(network=models.network(setup.model, info.num_classes), loss=nn.CrossEntropyLoss(),
                  train=train, holdout=holdout, input_shape=info.image_shape)
