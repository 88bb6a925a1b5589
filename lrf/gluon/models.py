"""Networks: a small CNN for the offline default and any Gluon model-zoo name.

A model is built, Xavier-initialised from a seed (SPEC §2: 42 unless given) and
materialised at once by a forward pass in inference mode, so every parameter is
drawn right after seeding (reproducible) and has its shape before anyone copies it.
"""

from __future__ import annotations

import os
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon.model_zoo import vision

from lrf import _io
from lrf.config import Setup
from lrf.config import SMALL_CNN
from lrf.gluon.engine import check_model_name


def small_cnn(classes: int = 10) -> gluon.HybridBlock:
    """Two 3x3 convolutions, a 2x2 pooling and two dense layers: for 8x8 to 32x32 images."""
    net = gluon.nn.HybridSequential()
    net.add(
        gluon.nn.Conv2D(16, 3, padding=1, activation="relu"),
        gluon.nn.Conv2D(32, 3, padding=1, activation="relu"),
        gluon.nn.MaxPool2D(2),
        gluon.nn.Flatten(),
        gluon.nn.Dense(64, activation="relu"),
        gluon.nn.Dense(classes),
    )
    return net


def network(name: str, classes: int) -> gluon.Block:
    """The network ``name`` (``"small-cnn"`` or a model-zoo name) for ``classes`` classes,
    built but not initialised (:func:`initialise` does that)."""
    check_model_name(name)
    return small_cnn(classes) if name == SMALL_CNN else vision.get_model(name, classes=classes)


def initialise(net: gluon.Block, image_shape: tuple[int, ...], ctx: mx.Context, seed: int = Setup.seed,
               initializer: mx.init.Initializer | None = None) -> gluon.Block:
    """Seed MXNet's and numpy's generators, initialise ``net`` (Xavier unless given another
    ``initializer``) and materialise it from one input of ``image_shape``."""
    mx.random.seed(seed)
    np.random.seed(seed)
    net.initialize(initializer or mx.init.Xavier(), ctx=ctx)
    materialise(net, image_shape, ctx)
    return net


def build_model(name: str, classes: int, image_shape: tuple[int, ...], ctx: mx.Context, seed: int = Setup.seed) -> gluon.Block:
    """A fresh, Xavier-initialised, materialised network.

    Args:
        name: ``"small-cnn"`` or a model-zoo name (reference ``"resnet18_v2"``).
        classes: number of output classes.
        image_shape: one input's shape (C, H, W), used to materialise lazy shapes.
        ctx: the device.
        seed: seeds MXNet's and numpy's generators before initialisation (42).
    """
    return initialise(network(name, classes), image_shape, ctx, seed)


def materialise(net: gluon.Block, image_shape: tuple[int, ...], ctx: mx.Context) -> None:
    """Run one forward pass outside autograd: shapes exist afterwards, nothing else changes
    (inference mode: BatchNorm's running statistics are read, not updated)."""
    net(mx.nd.zeros((1, *image_shape), ctx=ctx)).wait_to_read()


def save_parameters(net: gluon.Block, path: str | os.PathLike) -> Path:
    """Save every parameter (incl. BatchNorm statistics) atomically."""
    with _io.atomic_path(path) as tmp:
        # MXNet picks the format from the name, so the temporary keeps the real suffix
        real = tmp.with_name(tmp.name + ".params")
        try:
            net.save_parameters(str(real))
            os.replace(real, tmp)
        finally:
            real.unlink(missing_ok=True)
    return Path(path)


def load_parameters(net: gluon.Block, path: str | os.PathLike, ctx: mx.Context) -> None:
    """Load parameters saved by :func:`save_parameters`; a file of another architecture
    is a ValueError naming the file."""
    try:
        net.load_parameters(str(path), ctx=ctx)
    except (AssertionError, mx.base.MXNetError, KeyError) as error:
        raise ValueError(f"init_params={str(path)!r} does not fit this model: {error}") from None
