"""The built-in recipe (:mod:`lrf.recipe`): the data sources and models lrf ships, as a
user's recipe would give them: one way to say what to train."""

from __future__ import annotations

from mxnet import gluon

from lrf.config import Setup
from lrf.gluon import data as gdata
from lrf.gluon import models
from lrf.recipe import Recipe


def builtin(setup: Setup) -> Recipe:
    """``setup.data``'s data set (and its held-out split, when it has one), ``setup.model``
    for its classes, softmax cross-entropy and Xavier initialisation (SPEC §2)."""
    train, info = gdata.load_dataset(setup.data_spec, "train")
    holdout = gdata.load_dataset(setup.data_spec, "holdout")[0] if info.num_holdout else None
    return Recipe(network=models.network(setup.model, info.num_classes), loss=gluon.loss.SoftmaxCrossEntropyLoss(),
                  train=train, holdout=holdout, input_shape=info.image_shape)
