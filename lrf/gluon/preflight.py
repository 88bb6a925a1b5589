"""What the Gluon engine checks before any MXNet runs: data files, model names, devices.

Imports no MXNet, so an orchestrator (the Prefect flow, the CLIs before they
commit to a run) can refuse a bad setup in its own process, at its entry, in
milliseconds. :func:`prepare_setup` is that entry check: it completes a
:class:`lrf.config.Setup` (paths made absolute, the CIFAR-10 download folder
named) and raises ValueError naming the parameter and
the value for anything the engine could not use. The job that then trains checks
again only what it alone can see (the device as MXNet sees it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import metadata

import numpy as np

from lrf.config import REFERENCE_MODEL, SMALL_CNN, DataSpec, DeviceSpec, Setup
# the names mxnet 1.9.1's vision.get_model accepts (it keeps them in a local dict)
ZOO_MODELS = (
    *(f"resnet{depth}_v{version}" for version in (1, 2) for depth in (18, 34, 50, 101, 152)),
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
    "squeezenet1.0", "squeezenet1.1", "inceptionv3",
    "mobilenet1.0", "mobilenet0.75", "mobilenet0.5", "mobilenet0.25",
    "mobilenetv2_1.0", "mobilenetv2_0.75", "mobilenetv2_0.5", "mobilenetv2_0.25",
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what ImageFolderDataset reads
DIGITS_NUM_TRAIN, DIGITS_NUM_HOLDOUT = 1500, 297  # of scikit-learn's 1797 digits
CIFAR10_NUM_TRAIN, CIFAR10_NUM_HOLDOUT = 50_000, 10_000
_RECORDIO_MAGIC = 0xCED7230A


@dataclass(frozen=True)
class DataSize:
    """How many samples each split of a data source holds (0: the source has no holdout)."""

    num_train: int
    num_holdout: int


# --- models ---------------------------------------------------------------------------


def model_names() -> list[str]:
    """Every model name the engine builds."""
    return [SMALL_CNN, *ZOO_MODELS]


def check_model_name(name: str) -> str:
    if name != SMALL_CNN and name not in ZOO_MODELS:
        raise ValueError(
            f"model must be {SMALL_CNN!r} or a Gluon model-zoo name such as {REFERENCE_MODEL!r}, got model={name!r}"
        )
    return name


# --- devices --------------------------------------------------------------------------


def visible_gpus() -> int:
    """GPUs MXNet could use here, without importing it: none with the CPU build of MXNet
    (the ``mxnet`` package; CUDA builds are ``mxnet-cuNNN``), else the NVIDIA driver's
    GPUs, as many as ``CUDA_VISIBLE_DEVICES`` lets through."""
    if not any((dist.metadata["Name"] or "").lower().startswith("mxnet-cu") for dist in metadata.distributions()):
        return 0
    try:
        count = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count


def check_device(spec: DeviceSpec, text: str, visible: int | None = None) -> None:
    """Raise ValueError if this machine lacks the device ``spec`` (parsed from ``text``)."""
    if spec.kind == "cpu":
        if spec.index != 0:
            raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N' (MXNet has one CPU device), got device={text!r}")
        return
    visible = visible_gpus() if visible is None else visible
    if spec.index >= visible:
        hint = " (this MXNet is the CPU build, or CUDA sees no GPU)" if visible == 0 else ""
        raise ValueError(f"device={text!r} asks for GPU {spec.index}, but this machine has {visible} visible GPU(s){hint}")


# --- data -----------------------------------------------------------------------------


def rec_files(path: str) -> tuple[str, str]:
    """The ``.rec`` and its ``.idx`` (same rule as Gluon's RecordFileDataset)."""
    rec = os.path.expanduser(path)
    return rec, os.path.splitext(rec)[0] + ".idx"


def rec_holdout(rec: str) -> str | None:
    """The held-out sibling of a training ``.rec``: ``train`` replaced by ``test`` in its name."""
    folder, name = os.path.split(rec)
    if "train" not in name:
        return None
    holdout = os.path.join(folder, name.replace("train", "test"))
    return holdout if all(map(os.path.isfile, rec_files(holdout))) else None


def validate_data_spec(spec: DataSpec) -> DataSize:
    """Check the files a data source names, without decoding any data; return its size.

    Raises:
        ValueError: rec: the ``.rec`` or its ``.idx`` is missing, truncated or garbled;
            folder: not a directory, or no class sub-folder holds an image; cifar10: the
            root exists but is not a directory.

    >>> validate_data_spec(DataSpec("digits"))
    DataSize(num_train=1500, num_holdout=297)
    """
    if not isinstance(spec, DataSpec):
        raise TypeError(f"spec must be a DataSpec, got spec={spec!r}")
    if spec.source == "digits":
        return DataSize(DIGITS_NUM_TRAIN, DIGITS_NUM_HOLDOUT)
    if spec.source == "cifar10":
        if spec.path is not None:
            root = os.path.expanduser(spec.path)
            if os.path.exists(root) and not os.path.isdir(root):
                raise ValueError(f"data={str(spec)!r}: download root {root} is not a directory")
        return DataSize(CIFAR10_NUM_TRAIN, CIFAR10_NUM_HOLDOUT)
    if spec.source == "rec":
        num_train = _checked_rec(spec, spec.path)
        holdout = rec_holdout(rec_files(spec.path)[0])
        return DataSize(num_train, _checked_rec(spec, holdout) if holdout else 0)
    root = os.path.expanduser(spec.path)
    if not os.path.isdir(root):
        raise ValueError(f"data={str(spec)!r}: {root} is not a directory")
    num_images = _count_folder_images(root)
    if not num_images:
        raise ValueError(
            f"data={str(spec)!r}: {root} has no class sub-folder holding an image "
            f"({', '.join(IMAGE_EXTENSIONS)}); expected {root}/CLASS/IMAGE"
        )
    return DataSize(num_images, 0)


def resolve_data_spec(spec: DataSpec) -> DataSpec:
    """The same source named so that any process on this machine can open it: paths
    absolute (later steps may run in another working directory), CIFAR-10's download
    folder spelled out (MXNet's default, under ``$MXNET_HOME`` or ``~/.mxnet``)."""
    if spec.path is not None:
        return DataSpec(spec.source, os.path.abspath(os.path.expanduser(spec.path)))
    if spec.source == "cifar10":
        home = os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet"))
        return DataSpec("cifar10", os.path.abspath(os.path.expanduser(os.path.join(home, "datasets", "cifar10"))))
    return spec


def prepare_setup(setup: Setup) -> tuple[Setup, DataSize]:
    """The engine's entry check of a setup, and the setup completed for the jobs.

    Returns the setup with its data source resolved (:func:`resolve_data_spec`), and the
    data's size.

    Raises:
        ValueError: unknown model, missing GPU, unusable data files, or a batch larger
            than the training data; the message names the parameter and the value.
    """
    check_model_name(setup.model)
    check_device(setup.device_spec, setup.device)
    size = validate_data_spec(setup.source)
    if setup.batch_size > size.num_train:
        raise ValueError(
            f"batch_size must be at most the {size.num_train} training samples of the data, "
            f"got batch_size={setup.batch_size} (data={setup.data!r})"
        )
    return replace(setup, data=str(resolve_data_spec(setup.source))), size


def _checked_rec(spec: DataSpec, path: str) -> int:
    rec, idx = rec_files(path)
    if not os.path.isfile(rec):
        raise ValueError(f"data={str(spec)!r}: record file {rec} does not exist")
    if not os.path.isfile(idx):
        raise ValueError(
            f"data={str(spec)!r}: index file {idx} does not exist "
            "(an indexed RecordIO file needs its .idx next to the .rec)"
        )
    problem, count = _rec_problem(rec, idx)
    if problem:
        raise ValueError(f"data={str(spec)!r}: {problem}")
    return count


def _rec_problem(rec: str, idx: str) -> tuple[str | None, int]:
    """(what is wrong with an indexed RecordIO pair or None, number of records), read from
    the index and one header (cheap: no record is decoded). Catches the usual damage: a
    truncated copy, an empty or garbled index, an index of another file."""
    offsets = []
    with open(idx, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit():
                return f"index file {idx} line {number} is not 'KEY OFFSET'", 0
            offsets.append(int(fields[1]))
    if not offsets:
        return f"index file {idx} is empty", 0
    size = os.path.getsize(rec)
    last = max(offsets)
    with open(rec, "rb") as handle:
        handle.seek(last)
        header = handle.read(8)
    if len(header) < 8:
        return f"record file {rec} is truncated: the index points at byte {last}, the file has {size}", 0
    magic, length_field = np.frombuffer(header, dtype="<u4")
    end = last + 8 + (int(length_field) & ((1 << 29) - 1))
    if magic != _RECORDIO_MAGIC:
        return f"record file {rec} has no record at byte {last} where its index points (not its index, or corrupt)", 0
    if end > size:
        return f"record file {rec} is truncated: its last record ends at byte {end}, the file has {size}", 0
    return None, len(offsets)


def _count_folder_images(root: str) -> int:
    count = 0
    for entry in os.scandir(root):
        if entry.is_dir():
            for item in os.scandir(entry.path):
                if item.is_file() and os.path.splitext(item.name)[1].lower() in IMAGE_EXTENSIONS:
                    count += 1
    return count
