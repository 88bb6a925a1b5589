"""Data sources and loaders for the LR range test on PyTorch (SPEC §3): :mod:`lrf.gluon.data`'s, read without MXNet.

The same ``data=`` sources, checks and errors as the Gluon engine (see its docstring), so a
run gives the same answer to the same data whichever engine trains:

- ``digits``: the same normalised arrays (:func:`lrf.datasets.digits_splits`).
- ``rec:PATH/train.rec``: MXNet's indexed RecordIO, read here with ``os.pread`` and decoded
  with Pillow; holdout the ``test`` sibling. The records' pixels equal Gluon's (identical on
  all 60,000 JPEGs of CIFAR-10 here), normalised the same way.
- ``folder:PATH``: one sub-folder per class, resized to 32x32 as Gluon resizes (bilinear,
  without antialiasing; within one level of Gluon's pixels).
- ``cifar10`` is refused: it is MXNet's download; give the same data as ``rec`` or ``folder``.

Items are ``(CHW float32 tensor, int64 0-d tensor label)``: torch's ``CrossEntropyLoss``
takes class indices as int64. The batch order is :func:`lrf.sampler.seeded_batches`, the
same for every engine: the same seed gives both engines the same batches.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import multiprocessing
import os
import signal
import struct
import threading
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from lrf.config import DataSpec, Setup, parse_data_spec
from lrf.datacheck import _LENGTH_MASK, IMAGE_SAMPLE, RECORDIO_MAGIC, folder_classes, read_rec_index, sample_positions
from lrf.datasets import (CIFAR10_MEAN, CIFAR10_STD, FOLDER_IMAGE_SIZE, DataError, DatasetInfo, digits_splits,
                          rec_files, rec_holdout, rec_summary, validate_data_spec)
from lrf.sampler import check_batch_size, checked_loader_workers, seeded_batches

__all__ = ["DatasetInfo", "close_loader", "load_dataset", "make_batch_loader", "make_eval_loader"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout")
_MEAN = torch.tensor(CIFAR10_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(CIFAR10_STD, dtype=torch.float32).view(3, 1, 1)


def load_dataset(spec: DataSpec | str, split: str = "train") -> tuple[Dataset, DatasetInfo]:
    """Load one split of a data source as a torch dataset.

    Args:
        spec: a :class:`DataSpec` or its text (``"digits"``, ``"rec:PATH/train.rec"``, ...).
        split: ``"train"`` (default) or ``"holdout"``.

    Returns:
        ``(dataset, info)``; items are ``(CHW float32 tensor, int64 0-d tensor label)``.

    Raises:
        ValueError: invalid spec or files (see :func:`validate_data_spec`), unknown split,
            ``split="holdout"`` for a source without one, or ``cifar10`` (MXNet's download).
        DataError (a ValueError): data it cannot learn from, or a sampled image that does not
            decode or has another size; the message names the file and record.

    Example:
        >>> dataset, info = load_dataset("digits")
        >>> len(dataset), info.num_classes, info.image_shape, dataset[0][1].dtype
        (1500, 10, (1, 8, 8), torch.int64)
    """
    if isinstance(spec, str):
        spec = parse_data_spec(spec)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got split={split!r}")
    if spec.source == "cifar10":
        raise ValueError(f"data={str(spec)!r} is MXNet's download of CIFAR-10, which engine='torch' does not read; "
                         "give the same images as rec:PATH/train.rec or folder:PATH")
    validate_data_spec(spec)
    return {"digits": _load_digits, "rec": _load_rec, "folder": _load_folder}[spec.source](spec, split)


def make_batch_loader(
    dataset: Dataset, batch_size: int, loader_workers: int | None = None, seed: int = Setup.seed, start: int = 0
) -> DataLoader:
    """An endless loader of shuffled batches of exactly ``batch_size`` (SPEC §3), in the batch
    order of every engine (:func:`lrf.sampler.seeded_batches`).

    Keep one iterator open over it (each ``iter()`` continues the same random stream) and
    call :func:`close_loader` when done to stop its workers.

    Args:
        dataset: a torch dataset with a length.
        batch_size: samples per batch, ``1 <= batch_size <= len(dataset)``.
        loader_workers: loader processes; ``None`` (default) means one per CPU core, ``0``
            loads in the calling process. In a daemonic process or off the main thread (a job
            on a Dask worker) it loads in the calling thread, whatever is asked.
        seed: seed of the batch order (default 42).
        start: begin with batch number ``start`` of that order (0): a training that goes on
            from a saved state sees the batches it would have seen had it never stopped.

    Raises:
        TypeError / ValueError: invalid ``batch_size``, ``loader_workers`` or ``seed``,
            naming the parameter and the value.

    Example:
        >>> dataset, _ = load_dataset("digits")
        >>> batches = iter(make_batch_loader(dataset, 128, loader_workers=0))
        >>> next(batches)[0].shape
        torch.Size([128, 1, 8, 8])
    """
    size = len(dataset)
    loader_workers = checked_loader_workers(batch_size, size, loader_workers)
    batch_sampler = seeded_batches(size, batch_size, seed, start)
    workers = int(loader_workers)
    # Worker processes only where this process may have them. A daemonic process (a Dask
    # worker) may not have children at all; and off the main thread a fork copies only the
    # calling thread, so a lock another thread holds (the Dask worker's event loop, logging,
    # an OpenMP pool) stays held in the child for ever, and torch can watch its workers for a
    # crash (its SIGCHLD handler) from the main thread only. Gluon switches to threads there;
    # torch's DataLoader has none, so the batches load in the calling thread.
    off_main = threading.current_thread() is not threading.main_thread()
    if workers and (multiprocessing.current_process().daemon or off_main):
        logger.debug("loading batches in the calling thread, not in %d worker processes (daemonic process, or "
                     "not the main thread)", workers)
        workers = 0
    # Our own generator: every iter() of a DataLoader draws its workers' base seed from it, and
    # without one from torch's global random stream, which the model's initial weights use.
    return _BatchLoader(dataset, batch_sampler=batch_sampler, num_workers=workers, persistent_workers=False,
                        generator=torch.Generator().manual_seed(int(seed)))


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
    # a generator of its own, as make_batch_loader's: iterating must not draw from the global stream
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False, drop_last=False, num_workers=0,
                      generator=torch.Generator())


def close_loader(loader: DataLoader | object, timeout: float = 5.0) -> None:
    """Stop the worker processes of a loader (every iterator it made) or of one iterator;
    idempotent, and never waits for ever. Those iterators must not be used afterwards.

    torch's own shutdown (``_shutdown_workers``, also run when an iterator is garbage
    collected) asks each worker to stop, joins it for up to 5 s, then SIGTERMs it. It runs
    in a helper thread here, so that a worker that is stuck (blocked in a read of a dead
    file system, say) costs at most ``timeout`` seconds: then the workers left are SIGKILLed,
    which nothing can block. Without workers there is nothing to do.
    """
    iterators = list(getattr(loader, "_worker_iterators", ())) if isinstance(loader, DataLoader) else [loader]
    for iterator in iterators:
        if isinstance(iterator, _MultiProcessingDataLoaderIter):
            _shut_down(iterator, timeout)


class _BatchLoader(DataLoader):
    """A DataLoader that remembers (weakly) the iterators with workers it made, so that
    :func:`close_loader` can stop them given the loader (torch keeps no reference to them
    unless its workers persist)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._worker_iterators = weakref.WeakSet()

    def _get_iterator(self):
        if self.num_workers == 0:
            return super()._get_iterator()
        self.check_worker_number_rationality()
        iterator = _WorkerBatches(self)
        self._worker_iterators.add(iterator)
        return iterator


class _WorkerBatches(_MultiProcessingDataLoaderIter):
    """Batches from worker processes, a DataError from a worker raised with its own message.

    torch re-raises a worker's exception with the worker's whole traceback as its message;
    a DataError's message is one line naming the record, the same with or without workers
    (and in Gluon's engine), which is what a user, a CLI error line or a failed job shows.
    """

    def _process_data(self, data, *args):  # (data, worker_idx) in torch 2.14, (data) in older ones
        try:
            return super()._process_data(data, *args)
        except DataError:
            kind = data.exc_type  # data: the ExceptionWrapper; its text ends with "module.Kind: message"
            raise kind(data.exc_msg.rpartition(f"{kind.__module__}.{kind.__qualname__}: ")[2].rstrip("\n")) from None


def _shut_down(iterator: _MultiProcessingDataLoaderIter, timeout: float) -> None:
    workers = list(getattr(iterator, "_workers", []))
    closer = threading.Thread(target=iterator._shutdown_workers, name="lrf-close-loader", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        stuck = [w.pid for w in workers if w.exitcode is None and w.pid]
        logger.warning("loader workers %s did not stop within %.0f s: killing them", stuck, timeout)
        for pid in stuck:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        closer.join(timeout)


# -- sources -----------------------------------------------------------------


def _load_digits(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    splits = digits_splits()
    info = DatasetInfo(num_classes=10, image_shape=tuple(splits["train"][0].shape[1:]),
                       num_train=len(splits["train"][1]), num_holdout=len(splits["holdout"][1]))
    images, labels = splits[split]
    # copies: the cached arrays are read-only, and torch wants tensors it may write
    return TensorDataset(torch.tensor(images), torch.tensor(labels, dtype=torch.int64)), info


def _load_rec(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    rec, _ = rec_files(spec.path)
    holdout = rec_holdout(rec)
    if split == "holdout" and holdout is None:
        raise ValueError(
            f"data={str(spec)!r} has no holdout: expected a sibling file with 'train' "
            "replaced by 'test' in its name (and its .idx)"
        )
    train = rec_summary(spec, "train")  # labels and classes, read by validate_data_spec
    records = _RecordFile(rec, str(spec))
    image_shape = _decoded_rec_shape(str(spec), records, None)
    num_holdout = 0 if holdout is None else rec_summary(spec, "holdout").count
    info = DatasetInfo(num_classes=train.num_classes, image_shape=image_shape, num_train=train.count,
                       num_holdout=num_holdout)
    if split == "holdout":
        records = _RecordFile(holdout, str(spec))
        _decoded_rec_shape(str(spec), records, image_shape)
    return _CheckedRecordDataset(records, str(spec), train.num_classes, image_shape), info


def _load_folder(spec: DataSpec, split: str) -> tuple[Dataset, DatasetInfo]:
    if split == "holdout":
        raise ValueError(f"data={str(spec)!r} has no holdout (folder sources are train only)")
    dataset = _CheckedFolderDataset(os.path.expanduser(spec.path), str(spec))
    for position in sample_positions(len(dataset), IMAGE_SAMPLE).tolist():
        dataset[position]  # decodes, or names the file it cannot
    info = DatasetInfo(num_classes=len(dataset.synsets), image_shape=(3, FOLDER_IMAGE_SIZE, FOLDER_IMAGE_SIZE),
                       num_train=len(dataset), num_holdout=0)
    return dataset, info


# -- RecordIO without MXNet -----------------------------------------------------

_IR_HEADER = struct.Struct("<IfQQ")  # mxnet.recordio.IRHeader: flag, label, id, id2
_MAGIC = struct.pack("<I", RECORDIO_MAGIC)
_OPENING = threading.Lock()  # module level: a lock does not pickle


class _RecordFile:
    """The records of an indexed RecordIO file, by position in its index.

    Read with ``os.pread``, which moves no shared file position: loader threads may read at
    once. The file is opened on first read in each process (a worker gets the dataset pickled,
    or forked with its parent's descriptor), so no open handle is part of its state.
    """

    def __init__(self, rec: str, data: str):
        problem, index = read_rec_index(rec, rec_files(rec)[1])
        if problem:  # changed since validate_data_spec read it
            raise ValueError(f"data={data!r}: {problem}")
        # position -> offset as MXIndexedRecordIO reads it: a key listed twice reads its last offset
        by_key = dict(zip(index.keys, index.offsets.tolist()))
        self.path = rec
        self.offsets = np.array([by_key[key] for key in index.keys], dtype=np.int64)
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():  # not if __init__ raised
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def _handle(self) -> int:
        if self._pid != os.getpid():
            with _OPENING:
                if self._pid != os.getpid():
                    self._fd = os.open(self.path, os.O_RDONLY)
                    self._pid = os.getpid()  # after _fd: a thread that sees this pid sees the new descriptor
        return self._fd

    def read(self, position: int, where: str) -> bytes:
        """Record ``position``'s bytes (header and payload), as MXNet's reader joins them: a
        payload holding the magic number at an aligned place was written in parts (flags 1,
        2, 3), the magic dropped between them."""
        fd, offset, parts = self._handle(), int(self.offsets[position]), []
        while True:
            head = os.pread(fd, 8, offset)
            magic, lrecord = struct.unpack("<II", head) if len(head) == 8 else (None, 0)
            if magic != RECORDIO_MAGIC:
                raise DataError(f"{where} is not a whole record: no RecordIO header at byte {offset} (truncated "
                                "or corrupt)")
            length = lrecord & _LENGTH_MASK
            part = os.pread(fd, length, offset + 8)
            if len(part) < length:
                raise DataError(f"{where} is truncated: {length} bytes at byte {offset + 8}, {len(part)} there")
            parts.append(part)
            if lrecord >> 29 in (0, 3):  # a whole record, or its last part
                return _MAGIC.join(parts)
            offset += 8 + (length + 3) // 4 * 4


class _CheckedRecordDataset(Dataset):
    """Records of an indexed RecordIO file, checked as Gluon's ``_CheckedRecordDataset`` checks
    them: a record that does not decode, an image of another size than the first record's,
    a label that is not a class index of the training data each stop training naming it."""

    def __init__(self, records: _RecordFile, data: str, num_classes: int, image_shape: tuple[int, int, int]):
        self.filename, self._records, self._data, self._num_classes = records.path, records, data, num_classes
        self._hwc = (image_shape[1], image_shape[2], image_shape[0])

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        where = f"data={self._data!r}: record {idx} of {self.filename}"
        flag, label, payload = _unpack(self._records.read(idx, where), where)
        if flag:
            raise DataError(f"{where} holds a multi-value label; labels must be one class index per image")
        if not (math.isfinite(label) and label == int(label) and 0 <= label < self._num_classes):
            raise DataError(f"{where} has label {label!r}; labels must be class indices 0 to {self._num_classes - 1}")
        image = _decode(payload, where)
        if image.shape != self._hwc:
            raise DataError(f"{where} is a {image.shape[1]}x{image.shape[0]} image, the first record is "
                            f"{self._hwc[1]}x{self._hwc[0]}: every image of a RecordIO source must have one size")
        return _normalised(torch.from_numpy(image).permute(2, 0, 1)), torch.tensor(int(label), dtype=torch.int64)


def _unpack(record: bytes, where: str) -> tuple[int, float, bytes]:
    """(label count flag, label, encoded image) of a record, as ``mx.recordio.unpack`` splits it."""
    if len(record) < _IR_HEADER.size:
        raise DataError(f"{where} is too short to hold an image record (label header and image)")
    flag, label, _, _ = _IR_HEADER.unpack_from(record)
    return flag, label, record[_IR_HEADER.size + 4 * flag:]  # flag > 0: that many float32 labels come first


def _decoded_rec_shape(data: str, records: _RecordFile, expected: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """The CHW shape of a RecordIO file's images, from decoding the evenly spread sample of
    :data:`IMAGE_SAMPLE` records that Gluon's engine decodes (each must decode, all to one
    shape, ``expected`` if given). Raises DataError naming the record."""
    rec, first = records.path, None
    for position in sample_positions(len(records), IMAGE_SAMPLE).tolist():
        where = f"data={data!r}: record {position} of {rec}"
        height, width, _ = _decode(_unpack(records.read(position, where), where)[2], where).shape
        shape = (3, height, width)
        if first is None:
            first = (position, expected or shape)
        if shape != first[1]:
            other = "the training images are" if expected else f"record {first[0]} is"
            raise DataError(f"{where} is a {width}x{height} image, {other} {first[1][2]}x{first[1][1]}: "
                            "every image of a RecordIO source must have one size")
    return first[1]


# -- image folders ---------------------------------------------------------------


class _CheckedFolderDataset(Dataset):
    """Gluon's ImageFolderDataset read with Pillow: the classes are the sorted sub-folders
    (:func:`lrf.datacheck.folder_classes`), and a file that does not decode is named."""

    def __init__(self, root: str, data: str):
        classes = folder_classes(root)
        self._data = data
        self.synsets = [name for name, _ in classes]
        self.items = [(path, label) for label, (_, files) in enumerate(classes) for path in files]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.items[idx]
        with open(path, "rb") as handle:
            image = _decode(handle.read(), f"data={self._data!r}: image file {path}")
        pixels = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous()
        # bilinear without antialiasing, as Gluon's imresize (OpenCV's INTER_LINEAR): the engines'
        # pixels agree within one level (Pillow's BILINEAR antialiases when it shrinks: dozens apart)
        resized = F.interpolate(pixels, size=(FOLDER_IMAGE_SIZE, FOLDER_IMAGE_SIZE), mode="bilinear",
                                align_corners=False, antialias=False)[0]
        return _normalised(resized), torch.tensor(label, dtype=torch.int64)


# -- pixels ------------------------------------------------------------------------

# what Pillow raises for bytes it cannot make an image of (a truncated or garbled file)
_UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _decode(payload: bytes, where: str) -> np.ndarray:
    """HWC uint8 RGB pixels of an encoded image (grey, palette and alpha images made RGB,
    as MXNet's decoder does); DataError naming ``where`` if it does not decode."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            return np.array(image.convert("RGB"))
    except UnidentifiedImageError:
        reason = "Pillow cannot identify it as an image"
    except _UNDECODABLE as error:
        reason = str(error) or type(error).__name__
    raise DataError(f"{where} does not decode as an image ({reason})")


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    """CHW uint8 -> float32 in [0, 1], normalised per channel (SPEC §3), in Gluon's order of
    operations (ToTensor, then Normalize), so the same pixels give the same floats."""
    return pixels.to(torch.float32, memory_format=torch.contiguous_format).div_(255).sub_(_MEAN).div_(_STD)
