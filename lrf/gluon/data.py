"""Data sources and loaders for the LR range test on Gluon (SPEC §3).

A data source is named by a short text, the ``data=`` value of the CLI and of
flows, parsed into a :class:`lrf.config.DataSpec` (its files are checked by
:func:`lrf.datasets.validate_data_spec`):

- ``digits``: scikit-learn's 8x8 handwritten digits, shipped inside the
  sklearn wheel; the offline default (no download).
- ``cifar10`` or ``cifar10:ROOT``: the CIFAR-10 download of Gluon (default
  root ``~/.mxnet/datasets/cifar10``); the reference data.
- ``rec:PATH/train.rec``: an indexed MXNet RecordIO file (``.idx`` next to
  it); the holdout is the sibling file with ``train`` replaced by ``test`` in
  its name, when it exists.
- ``folder:PATH``: one sub-folder per class of ``.jpg``/``.jpeg``/``.png``
  images, resized to 32x32; no holdout.

Before any of it trains, :func:`lrf.datasets.validate_data_spec` checks the
labels and classes, and a sample of the images by their headers; loading a ``rec`` or
``folder`` source decodes that sample; and a record or file met later that cannot be
used (it does not decode, has another size, or a label that is no class index) stops
the training with a :class:`lrf.datacheck.DataError` naming it.

Every dataset yields ``(CHW float32 image, float32 label)``. ``cifar10``,
``rec`` and ``folder`` images are scaled to [0, 1] and normalised with the
CIFAR-10 per-channel statistics of SPEC §3 (the reference data is CIFAR-10;
other data gets the same statistics rather than its own). ``digits`` is
normalised with the mean and standard deviation of its own training split.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import threading

import mxnet as mx
import numpy as np
from mxnet.gluon.data import ArrayDataset, DataLoader, Dataset

from lrf.config import DataSpec, Setup, parse_data_spec
from lrf.datacheck import IMAGE_SAMPLE, sample_positions
from lrf.datasets import (CIFAR10_MEAN, CIFAR10_NUM_HOLDOUT, CIFAR10_NUM_TRAIN, CIFAR10_STD, FOLDER_IMAGE_SIZE, DataError, DatasetInfo, digits_splits, rec_files,
                          rec_holdout, rec_summary, validate_data_spec)
from lrf.sampler import check_batch_size, checked_loader_workers, seeded_batches

__all__ = [
    "DatasetInfo",
    "close_loader",
    "load_dataset",
    "make_batch_loader",
    "make_eval_loader",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout")


def load_dataset(spec: DataSpec | str, split: str = "train") -> tuple[Dataset, DatasetInfo]:
    """Load one split of a data source as a Gluon dataset.

    Args:
        spec: a :class:`DataSpec` or its text (``"digits"``, ...).
        split: ``"train"`` (default) or ``"holdout"``.

    Returns:
        ``(dataset, info)``; items are ``(CHW float32 image, float32 label)``.

    Raises:
        ValueError: invalid spec or files (see :func:`validate_data_spec`),
            unknown split, or ``split="holdout"`` for a source without one.
        DataError (a ValueError): data it cannot learn from (see
            :func:`validate_data_spec`), or a sampled image that does not decode or has
            another size; the message names the file and record.

    Example:
        >>> dataset, info = load_dataset("digits")
        >>> len(dataset), info.num_classes, info.image_shape
        (1500, 10, (1, 8, 8))
    """
    if isinstance(spec, str):
        spec = parse_data_spec(spec)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got split={split!r}")
    validate_data_spec(spec)
    loader = {
        "digits": _load_digits,
        "cifar10": _load_cifar10,
        "rec": _load_rec,
        "folder": _load_folder,
    }[spec.source]
    return loader(spec, split)


def make_batch_loader(
    dataset: Dataset, batch_size: int, loader_workers: int | None = None, seed: int = Setup.seed, start: int = 0
) -> DataLoader:
    """An endless loader of shuffled batches of exactly ``batch_size`` (SPEC §3).

    Keep one iterator open over it: each ``iter()`` continues the same random
    stream, so only the first iterator of a fresh loader is reproducible from
    ``seed``. Call :func:`close_loader` when done to stop the workers.

    Args:
        dataset: a Gluon dataset with a length.
        batch_size: samples per batch, ``1 <= batch_size <= len(dataset)``.
        loader_workers: loader processes; ``None`` (default) means one per CPU
            core, ``0`` loads in the calling process.
        seed: seed of the batch order (default 42).
        start: begin with batch number ``start`` of that order (0): a training that goes
            on from a saved state sees the batches it would have seen had it never
            stopped. Skipped batches are drawn as indices only; no data is loaded.

    Raises:
        TypeError / ValueError: invalid ``batch_size``, ``loader_workers`` or
            ``seed``, naming the parameter and the value.

    Example:
        >>> dataset, _ = load_dataset("digits")
        >>> batches = iter(make_batch_loader(dataset, 128, loader_workers=0))
        >>> next(batches)[0].shape
        (128, 1, 8, 8)
    """
    size = len(dataset)
    loader_workers = checked_loader_workers(batch_size, size, loader_workers)
    batch_sampler = seeded_batches(size, batch_size, seed, start)
    # Worker processes only from a process's main thread: MXNet's DataLoader installs a signal
    # handler when it forks them, which Python allows there alone; a job on a Dask worker runs
    # in a thread (and a daemonic process, which may not have children), so there its workers
    # are threads (decoding and augmenting release the GIL; measured in benchmarks/data_pipeline)
    thread_pool = loader_workers > 0 and threading.current_thread() is not threading.main_thread()
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=int(loader_workers), thread_pool=thread_pool)


def make_eval_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    """A finite loader over ``dataset`` in order, last batch kept, no workers.

    Raises:
        TypeError / ValueError: if ``batch_size`` is not a positive integer.

    Example:
        >>> dataset, _ = load_dataset("digits", "holdout")
        >>> [x.shape[0] for x, _ in make_eval_loader(dataset, 100)]
        [100, 100, 97]
    """
    batch_size = check_batch_size(batch_size)
    return DataLoader(
        dataset, batch_size=int(batch_size), shuffle=False, last_batch="keep", num_workers=0
    )


def close_loader(loader: DataLoader, timeout: float = 5.0) -> None:
    """Stop a loader's worker processes; idempotent, and never waits for ever.

    MXNet 1.9.1's ``DataLoader`` keeps a ``multiprocessing.Pool`` in
    ``_worker_pool`` and terminates it only in ``__del__``, i.e. whenever
    garbage collection gets to it. ``Pool.terminate()`` itself can hang: it
    SIGTERMs the workers, then joins them, and a worker blocked on the pool's
    queue lock (held by a worker that was just terminated) never gets there
    (seen here: a job process hung in ``_terminate_pool``, its flow run
    "Running" for ever). So the terminate runs in a helper thread; if it is not
    done within ``timeout`` seconds, the workers are SIGKILLed, which nothing
    can block. Iterators over the loader must not be used afterwards. A loader
    with ``loader_workers=0`` has no pool: nothing to do.
    """
    pool = getattr(loader, "_worker_pool", None)
    if pool is not None:
        workers = list(getattr(pool, "_pool", []))
        closer = threading.Thread(target=pool.terminate, name="lrf-close-loader", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            stuck = [w.pid for w in workers if w.exitcode is None and getattr(w, "pid", None)]
            logger.warning("loader workers %s did not stop on SIGTERM within %.0f s: killing them", stuck, timeout)
            for pid in stuck:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            closer.join(timeout)
        loader._worker_pool = None  # so __del__ does not terminate it again
    loader._iter = None  # drop a prefetched iterator bound to the dead pool


# -- sources -----------------------------------------------------------------


def _load_digits(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    splits = digits_splits()
    info = DatasetInfo(
        num_classes=10,
        image_shape=tuple(splits["train"][0].shape[1:]),
        num_train=len(splits["train"][1]),
        num_holdout=len(splits["holdout"][1]),
    )
    return ArrayDataset(*splits[split]), info


def _load_cifar10(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    kwargs = {} if spec.path is None else {"root": os.path.expanduser(spec.path)}
    # Downloads (about 170 MB) on first use; never at import.
    dataset = mx.gluon.data.vision.CIFAR10(train=(split == "train"), **kwargs)
    info = DatasetInfo(
        num_classes=10, image_shape=(3, 32, 32), num_train=CIFAR10_NUM_TRAIN, num_holdout=CIFAR10_NUM_HOLDOUT
    )
    return dataset.transform(_normalised_sample), info


def _load_rec(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    rec, _ = rec_files(spec.path)
    holdout = rec_holdout(rec)
    if split == "holdout" and holdout is None:
        raise ValueError(
            f"data={str(spec)!r} has no holdout: expected a sibling file with 'train' "
            "replaced by 'test' in its name (and its .idx)"
        )
    train = rec_summary(spec, "train")  # labels and classes, read without MXNet by validate_data_spec
    image_shape = _decoded_rec_shape(str(spec), rec, None, *_version(rec))
    num_holdout = 0 if holdout is None else rec_summary(spec, "holdout").count
    info = DatasetInfo(num_classes=train.num_classes, image_shape=image_shape, num_train=train.count,
                       num_holdout=num_holdout)
    if split == "holdout":
        _decoded_rec_shape(str(spec), holdout, image_shape, *_version(holdout))
    dataset = _CheckedRecordDataset(rec if split == "train" else holdout, str(spec), train.num_classes, image_shape)
    return dataset.transform(_normalised_sample), info


def _load_folder(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    if split == "holdout":
        raise ValueError(f"data={str(spec)!r} has no holdout (folder sources are train only)")
    dataset = _CheckedFolderDataset(os.path.expanduser(spec.path), str(spec))
    for position in sample_positions(len(dataset), IMAGE_SAMPLE).tolist():
        dataset[position]  # decodes, or names the file it cannot
    info = DatasetInfo(
        num_classes=len(dataset.synsets),
        image_shape=(3, FOLDER_IMAGE_SIZE, FOLDER_IMAGE_SIZE),
        num_train=len(dataset),
        num_holdout=0,
    )
    return dataset.transform(_resized_normalised_sample), info


# RecordIO reads of this process, one at a time: a loader on a Dask worker runs its workers as
# threads, which share the dataset's file handle (interleaved, they read corrupt records). Module
# level, not on the dataset: a lock does not pickle, and decoding stays outside it.
_RECORD_READ = threading.Lock()


class _CheckedRecordDataset(mx.gluon.data.vision.ImageRecordDataset):
    """Gluon's ImageRecordDataset that names the record it cannot use: one that does not
    decode, an image of another size than the first record's, a label that is not a class
    index of the training data. (Preflight read every label and sampled the images; this
    catches the rest, when a batch first needs the record.)"""

    def __init__(self, filename: str, data: str, num_classes: int, image_shape: tuple[int, int, int]):
        super().__init__(filename, flag=1)
        self._data, self._num_classes = data, num_classes
        self._hwc = (image_shape[1], image_shape[2], image_shape[0])

    def __getitem__(self, idx):
        with _RECORD_READ:  # one file handle: its seek + read must not interleave between loader threads
            record = self._record.read_idx(self._record.keys[idx])
        header, payload = mx.recordio.unpack(record)
        where = f"data={self._data!r}: record {idx} of {self.filename}"
        label = header.label
        if not np.isscalar(label):
            raise DataError(f"{where} holds a multi-value label; labels must be one class index per image")
        if not (math.isfinite(label) and label == int(label) and 0 <= label < self._num_classes):
            raise DataError(f"{where} has label {label!r}; labels must be class indices 0 to {self._num_classes - 1}")
        try:
            image = mx.image.imdecode(payload, self._flag)
        except mx.base.MXNetError as error:
            raise DataError(f"{where} does not decode as an image ({_last_line(error)})") from None
        if image.shape != self._hwc:
            raise DataError(f"{where} is a {image.shape[1]}x{image.shape[0]} image, the first record is "
                            f"{self._hwc[1]}x{self._hwc[0]}: every image of a RecordIO source must have one size")
        return image, label


class _CheckedFolderDataset(mx.gluon.data.vision.ImageFolderDataset):
    """Gluon's ImageFolderDataset that names the file it cannot decode."""

    def __init__(self, root: str, data: str):
        super().__init__(root, flag=1)
        self._data = data

    def __getitem__(self, idx):
        path, label = self.items[idx]
        try:
            image = mx.image.imread(path, self._flag)
        except mx.base.MXNetError as error:
            raise DataError(f"data={self._data!r}: image file {path} does not decode as an image "
                            f"({_last_line(error)})") from None
        return image, label


def _last_line(error: Exception) -> str:
    """MXNet's message without its C++ traceback: the last line says what failed."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


# -- helpers -----------------------------------------------------------------


@functools.cache
def _image_transform() -> mx.gluon.Block:
    # Built once per process (loader workers build their own on first use).
    from mxnet.gluon.data.vision import transforms

    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    )


# Module-level functions, not lambdas, so datasets stay picklable for workers.
# The label becomes float32 here: RecordIO gives a Python float (float64 after
# batching) and CIFAR10 an int32.
def _normalised_sample(image: mx.nd.NDArray, label) -> tuple[mx.nd.NDArray, np.float32]:
    return _image_transform()(image), np.float32(label)


def _resized_normalised_sample(image: mx.nd.NDArray, label) -> tuple[mx.nd.NDArray, np.float32]:
    return _normalised_sample(mx.image.imresize(image, FOLDER_IMAGE_SIZE, FOLDER_IMAGE_SIZE), label)


def _version(path: str) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _decoded_rec_shape(data: str, rec: str, expected: tuple[int, int, int] | None, *version) -> tuple[int, int, int]:
    """The CHW shape of a RecordIO file's images, from decoding an evenly spread sample of
    :data:`IMAGE_SAMPLE` records (every one must decode, all to one shape, ``expected`` if
    given); cached per file version. Raises DataError naming the record."""
    del version  # only part of the cache key
    record = mx.recordio.MXIndexedRecordIO(rec_files(rec)[1], rec, "r")
    first = None
    try:
        keys = record.keys
        for position in sample_positions(len(keys), IMAGE_SAMPLE).tolist():
            where = f"data={data!r}: record {position} of {rec}"
            _, payload = mx.recordio.unpack(record.read_idx(keys[position]))
            try:
                height, width, _ = mx.image.imdecode(payload, 1).shape  # flag 1: 3 channels
            except mx.base.MXNetError as error:
                raise DataError(f"{where} does not decode as an image ({_last_line(error)})") from None
            shape = (3, height, width)
            if first is None:
                first = (position, expected or shape)
            if shape != first[1]:
                other = "the training images are" if expected else f"record {first[0]} is"
                raise DataError(f"{where} is a {width}x{height} image, {other} {first[1][2]}x{first[1][1]}: "
                                "every image of a RecordIO source must have one size")
    finally:
        record.close()
    return first[1]
