"""The data sources every engine reads, known without a framework: sizes, checks, identity.

Imports no framework, so an orchestrator (the Prefect flow, the CLIs before they
commit to a run) can refuse bad data in its own process, at its entry, in
milliseconds: :func:`validate_data_spec` raises ValueError naming the parameter and
the value for anything an engine could not use, including data it could open but
not learn from (labels, classes, images: :mod:`lrf.datacheck`).
:func:`resolve_data_spec` makes paths absolute for jobs elsewhere, and
:func:`data_fingerprint` is the data's identity for cache keys (:mod:`lrf.cache`).
The engine's own entry check (model names, devices) is :func:`lrf.engine.prepare_setup`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from importlib import metadata

from lrf.config import DataSpec
from lrf.datacheck import (  # noqa: F401  (DataError, IMAGE_EXTENSIONS: part of this module's interface)
    IMAGE_EXTENSIONS, DataError, RecSummary, check_folder, check_rec, folder_classes, read_rec_index,
)

DIGITS_NUM_TRAIN, DIGITS_NUM_HOLDOUT = 1500, 297  # of scikit-learn's 1797 digits
CIFAR10_NUM_TRAIN, CIFAR10_NUM_HOLDOUT = 50_000, 10_000
# every engine's image normalisation (SPEC §3): CIFAR-10's per-channel statistics, for any image data
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
FOLDER_IMAGE_SIZE = 32  # folder images are resized to FOLDER_IMAGE_SIZE x FOLDER_IMAGE_SIZE


@dataclass(frozen=True)
class DataSize:
    """How many samples each split of a data source holds (0: the source has no holdout)."""

    num_train: int
    num_holdout: int


@dataclass(frozen=True)
class DatasetInfo(DataSize):
    """A loaded data source: its size (:class:`lrf.datasets.DataSize`, known without
    loading it), and what loading tells (the same for both splits)."""

    num_classes: int = 0
    image_shape: tuple[int, int, int] = (0, 0, 0)  # (channels, height, width) as yielded


# --- data -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def digits_splits() -> dict:
    """scikit-learn's digits as ``{"train" | "holdout": (N x 1 x 8 x 8 float32 images, float32 labels)}``:
    a fixed split (seed 0), normalised by the training split's mean and standard deviation;
    every engine's ``digits`` (read-only arrays, built once per process)."""
    import numpy as np
    from sklearn.datasets import load_digits  # heavy import, only when needed


    digits = load_digits()
    images = (digits.images / 16.0)[:, None, :, :]  # (N, 1, 8, 8) in [0, 1]
    labels = digits.target.astype(np.float32)
    order = np.random.RandomState(0).permutation(len(labels))
    indices = {"train": order[:DIGITS_NUM_TRAIN], "holdout": order[DIGITS_NUM_TRAIN:]}
    train = images[indices["train"]]
    mean, std = float(train.mean()), float(train.std())
    splits = {}
    for split, index in indices.items():
        x = ((images[index] - mean) / std).astype(np.float32)
        y = labels[index]
        # Cached and shared between calls: make accidental mutation an error.
        x.setflags(write=False)
        y.setflags(write=False)
        splits[split] = (x, y)
    return splits




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
    """Check the files a data source names, and what can be read of the data without decoding
    an image (:mod:`lrf.datacheck`); return its size.

    Raises:
        ValueError: rec: the ``.rec`` or its ``.idx`` is missing, truncated or garbled;
            folder: not a directory; cifar10: the root exists but is not a directory.
        DataError (a ValueError): labels that are no class indices, fewer than two classes,
            held-out labels beyond the training classes, a sampled image that is empty, no
            image, or (RecordIO) of another size; the message names the file and record.

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
        train = _checked_rec(spec, spec.path)
        holdout = rec_holdout(rec_files(spec.path)[0])
        return DataSize(train.count, _checked_rec(spec, holdout, train.num_classes).count if holdout else 0)
    root = os.path.expanduser(spec.path)
    if not os.path.isdir(root):
        raise ValueError(f"data={str(spec)!r}: {root} is not a directory")
    return DataSize(check_folder(str(spec), root), 0)


def rec_summary(spec: DataSpec, split: str = "train") -> RecSummary:
    """What :func:`validate_data_spec` learned of a RecordIO split (classes, records, image size);
    cached per version of the files, so the engine asks again for free."""
    rec = rec_files(spec.path)[0]
    if split == "train":
        return _checked_rec(spec, spec.path)
    return _checked_rec(spec, rec_holdout(rec), _checked_rec(spec, spec.path).num_classes)


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


# --- the data's identity, for cache keys ---------------------------------------------

FINGERPRINT_BLOCKS, FINGERPRINT_BLOCK_SIZE = 16, 4096  # bytes of a .rec hashed: 64 KiB, spread


def data_fingerprint(spec: DataSpec) -> dict:
    """A cheap identity of the data's *content*, for cache keys (the path alone is not:
    new images written to the same path must not reuse the old work).

    Cheap because the flow computes it for every task's key, in its own process:

    - ``rec``: for the .rec and the .idx of each split, size and mtime_ns (a rewrite by any
      ordinary tool changes them; one ``stat``), and a SHA-256 of the whole index and of
      16 blocks of 4 KiB spread over the record file (a different file copied in with its
      time kept, ``cp -p``/``rsync -a``/an archive, almost always has other record lengths,
      hence another index). Hashing all of the .rec would read every byte for every task:
      0.1 s for CIFAR-10's 48 MB when cached, minutes for ImageNet's 140 GB.
    - ``folder``: the sorted relative path, size and mtime_ns of every image file (one
      ``stat`` per image; what ImageFolderDataset reads, and the class names).
    - ``digits``: the installed scikit-learn version (the data ships inside its wheel).
    - ``cifar10``: the MXNet version: MXNet checks every CIFAR-10 file against fixed SHA-1
      sums when it loads them (and downloads again on a mismatch), so the data is the same
      at any root; and the key does not change when the first job downloads it.

    A fingerprint that changes without the content changing (a ``touch``, a copy) only
    costs recomputation; what it must never do is stay the same when the content changes.

    >>> data_fingerprint(DataSpec("digits"))["source"]
    'digits'
    """
    if spec.source == "digits":
        return {"source": "digits", "scikit-learn": _version_of("scikit-learn")}
    if spec.source == "cifar10":
        return {"source": "cifar10", "mxnet": _version_of("mxnet")}
    if spec.source == "rec":
        rec = rec_files(spec.path)[0]
        holdout = rec_holdout(rec)
        return {"source": "rec", "train": _rec_fingerprint(rec), "holdout": holdout and _rec_fingerprint(holdout)}
    root = os.path.expanduser(spec.path)
    digest = hashlib.sha256()
    try:
        for name, files in folder_classes(root):
            for path in files:
                stat = os.stat(path)
                digest.update(f"{os.path.relpath(path, root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    except OSError:
        return {"source": "folder", "missing": True}
    return {"source": "folder", "files": digest.hexdigest()}


def _rec_fingerprint(rec: str) -> dict | None:
    rec, idx = rec_files(rec)
    try:
        stats = [os.stat(rec), os.stat(idx)]
        digest = hashlib.sha256()
        with open(idx, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        size = stats[0].st_size
        with open(rec, "rb") as handle:
            for k in range(FINGERPRINT_BLOCKS):
                handle.seek(max(0, size - FINGERPRINT_BLOCK_SIZE) * k // max(1, FINGERPRINT_BLOCKS - 1))
                digest.update(handle.read(FINGERPRINT_BLOCK_SIZE))
    except OSError:
        return None  # a missing file: the job fails on it, naming it
    return {"rec": [stats[0].st_size, stats[0].st_mtime_ns], "idx": [stats[1].st_size, stats[1].st_mtime_ns],
            "sha256": digest.hexdigest()}


def _version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _checked_rec(spec: DataSpec, path: str, train_classes: int | None = None) -> RecSummary:
    rec, idx = rec_files(path)
    if not os.path.isfile(rec):
        raise ValueError(f"data={str(spec)!r}: record file {rec} does not exist")
    if not os.path.isfile(idx):
        raise ValueError(
            f"data={str(spec)!r}: index file {idx} does not exist "
            "(an indexed RecordIO file needs its .idx next to the .rec)"
        )
    return _checked_rec_version(str(spec), rec, idx, train_classes, _version(rec), _version(idx))


@functools.lru_cache(maxsize=16)
def _checked_rec_version(data: str, rec: str, idx: str, train_classes: int | None, *version) -> RecSummary:
    """Checked once per process and version of the files (every job loads the data twice)."""
    problem, index = read_rec_index(rec, idx)
    if problem:
        raise ValueError(f"data={data!r}: {problem}")
    return check_rec(data, index, train_classes)


def _version(path: str) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
