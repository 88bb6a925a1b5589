"""Networks: a small CNN for the offline default and torchvision's classification models.

A model is seeded (SPEC §2: 42 unless given), given its shapes by one forward pass in
inference mode (lazy modules), then every module's parameters are drawn again by its own
``reset_parameters`` (PyTorch's default initialisation) or by the recipe's initialiser,
right after seeding: the same seed gives the same weights however and whenever the
network was built.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lrf import _io
from lrf.config import SMALL_CNN, Setup
from lrf.pytorch.engine import check_model_name


def small_cnn(classes: int = 10) -> nn.Module:
    """Two 3x3 convolutions, a 2x2 pooling and two dense layers: for 8x8 to 32x32 images
    (the Gluon engine's small CNN; the input channels and the first dense layer's inputs
    are found from the data, as Gluon does)."""
    return nn.Sequential(
        nn.LazyConv2d(16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(64), nn.ReLU(),
        nn.Linear(64, classes),
    )


def network(name: str, classes: int) -> nn.Module:
    """The network ``name`` (``"small-cnn"`` or a torchvision model name) for ``classes``
    classes, untrained (no downloaded weights)."""
    check_model_name(name)
    if name == SMALL_CNN:
        return small_cnn(classes)
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=classes)


def initialise(net: nn.Module, image_shape: tuple[int, ...], device: torch.device, seed: int = Setup.seed,
               initializer=None) -> nn.Module:
    """Give ``net`` its shapes from one input of ``image_shape``, draw its parameters from
    ``seed`` (each module's ``reset_parameters``, PyTorch's default, or ``initializer`` applied
    to every module, ``net.apply(initializer)``), then put it on ``device``.

    Drawn on the CPU, from the CPU's generator, as MXNet's engine does: the same seed gives the
    same weights on every device (a GPU's generator draws other numbers). Errors of the move
    to ``device`` (out of memory, no code for the GPU) come from the last line alone."""
    net.to("cpu")
    torch.manual_seed(seed)
    with torch.no_grad():
        was_training = net.training
        net.eval()  # BatchNorm reads its statistics here, does not move them
        net(torch.zeros((1, *image_shape)))
        net.train(was_training)
    torch.manual_seed(seed)
    if initializer is not None:
        net.apply(initializer)
    else:
        for module in net.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return net.to(device)


def save_parameters(net: nn.Module, path: str | os.PathLike) -> Path:
    """Save every parameter and buffer (the state dict, incl. BatchNorm statistics) atomically."""
    with _io.atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(net.state_dict(), handle)  # to a handle: the archive's folder is not named after the file
    return Path(path)


def load_parameters(net: nn.Module, path: str | os.PathLike, device: torch.device) -> None:
    """Load parameters saved by :func:`save_parameters` (or any ``torch.save(state_dict)``);
    a file of another architecture is a ValueError naming the file."""
    try:
        net.load_state_dict(torch.load(path, map_location=device, weights_only=True), strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"init_params={str(path)!r} does not fit this model: {error}") from None
