"""What lrf trains for this project: its network, loss, data and augmentation.

``lrf-flow --recipe spirals.recipe:recipe --optimizer sgd --optimizer-params momentum=0.9 wd=5e-4``
asks lrf for the learning rate of exactly this set-up. lrf calls :func:`recipe` in every
job, where the job runs, and keeps the rest (seeded initialisation, batches, sweep,
candidates, cache, artifacts).
"""

from pathlib import Path

import numpy as np
from mxnet import gluon

from lrf.recipe import Recipe

DATA_FILES = ["data/points.csv"]  # what lrf fingerprints for its cache, beside this package's code
HOLDOUT = 300  # the last rows: the held-out set the candidates are judged on


class SpiralNet(gluon.HybridBlock):
    """A small residual MLP on 2-D points (not from a model zoo)."""

    def __init__(self, width: int = 128, classes: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.embed = gluon.nn.Dense(width, activation="relu")
        self.hidden = gluon.nn.Dense(width, activation="relu")
        self.out = gluon.nn.Dense(classes)

    def hybrid_forward(self, F, x):
        h = self.embed(3 * x)  # points lie in the unit disc: spread them over the first layer's range
        return self.out(h + self.hidden(h))


class Jitter:
    """Augmentation: a small random rotation and shift of each training point."""

    def __init__(self, angle: float = 0.15, shift: float = 0.02):
        self.angle, self.shift = angle, shift

    def __call__(self, point, label):
        a = np.random.uniform(-self.angle, self.angle)
        rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=np.float32)
        moved = rotation @ point + np.random.normal(0, self.shift, 2).astype(np.float32)
        return moved.astype(np.float32), label


def points(path: Path = Path(__file__).with_name("data") / "points.csv") -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return table[:, :2], table[:, 2]


def recipe(setup) -> Recipe:
    """The project's training set-up (``setup`` is lrf's: seed, batch size, ...; unused here)."""
    x, y = points()
    train = gluon.data.ArrayDataset(x[:-HOLDOUT], y[:-HOLDOUT]).transform(Jitter())
    holdout = gluon.data.ArrayDataset(x[-HOLDOUT:], y[-HOLDOUT:])
    return Recipe(network=SpiralNet(), loss=gluon.loss.SoftmaxCrossEntropyLoss(), train=train, holdout=holdout)
