"""What preflight reads of the data itself, without MXNet: labels, image headers, class folders.

Cheap by design, so that a bad data source is refused by name before anything
trains. A RecordIO file's labels come from its record headers: 16 bytes read at
every offset of the index (a memory map; ~0.2 s for CIFAR-10's 50,000 records),
at most :data:`LABEL_SCAN_LIMIT` records, evenly spread. Images are looked at on a
bounded, evenly spread sample of :data:`IMAGE_SAMPLE` records or files, by their
first bytes only: an image format's signature, and for JPEG and PNG the width and
height written in the header. No pixel is decoded here: the engine decodes the
same sample when it loads the data (:mod:`lrf.gluon.data`), and names any record or
file it meets later in training that it cannot use.

The rules (a classifier's): labels are whole numbers 0, 1, ..., K-1 with K >= 2
(one per image: no multi-value labels); every class of the training data has at
least one record (a gap means the labels are offset, e.g. counted from 1, or are
not class indices at all); held-out labels lie within the training classes; all
images of a RecordIO source have one size (a batch stacks them; folder images are
resized). Every error is a :class:`DataError` whose message names ``data=``, the
file and the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

LABEL_SCAN_LIMIT = 100_000  # records whose labels are read (all of CIFAR-10's 50,000)
IMAGE_SAMPLE = 32  # records or files whose images are looked at (and decoded by the engine)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what ImageFolderDataset reads
HEAD_BYTES = 65_536  # of an image read to find its size (a JPEG's EXIF block may come first)
RECORDIO_MAGIC = 0xCED7230A
_LENGTH_MASK = (1 << 29) - 1  # the low 29 bits of a RecordIO length field; the top 3 flag continuation
_IR_HEADER = 24  # mxnet.recordio.IRHeader: flag (uint32), label (float32), id, id2 (uint64)


class DataError(ValueError):
    """Data the engine cannot use. The message says what is wrong and where: ``data=``,
    the file and, for RecordIO, the record (its position in the index)."""


# --- RecordIO ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecIndex:
    """An indexed RecordIO pair as its index describes it: keys and byte offsets, in order."""

    rec: str
    idx: str
    keys: tuple[int, ...]
    offsets: np.ndarray  # int64, one per record

    def record(self, position: int) -> str:
        """How messages name a record: its position in the index, and its key if that differs."""
        key = self.keys[position]
        return f"record {position}" if key == position else f"record {position} (key {key})"


def read_rec_index(rec: str, idx: str) -> tuple[str | None, RecIndex | None]:
    """(what is wrong with an indexed RecordIO pair or None, its index), read from the index
    and the headers of the records (cheap: no image is read). Catches the usual damage: a
    truncated copy, an empty or garbled index, an index of another file."""
    keys, offsets = [], []
    with open(idx, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit() or not fields[0].lstrip(b"-").isdigit():
                return f"index file {idx} line {number} is not 'KEY OFFSET'", None
            keys.append(int(fields[0]))
            offsets.append(int(fields[1]))
    if not offsets:
        return f"index file {idx} is empty", None
    size = os.path.getsize(rec)
    last = max(offsets)
    with open(rec, "rb") as handle:
        handle.seek(last)
        header = handle.read(8)
    if len(header) < 8:
        return f"record file {rec} is truncated: the index points at byte {last}, the file has {size}", None
    magic, length_field = np.frombuffer(header, dtype="<u4")
    end = last + 8 + (int(length_field) & _LENGTH_MASK)
    if magic != RECORDIO_MAGIC:
        return f"record file {rec} has no record at byte {last} where its index points (not its index, or corrupt)", None
    if end > size:
        return f"record file {rec} is truncated: its last record ends at byte {end}, the file has {size}", None
    return None, RecIndex(rec, idx, tuple(keys), np.asarray(offsets, dtype=np.int64))


def sample_positions(count: int, limit: int) -> np.ndarray:
    """Up to ``limit`` positions of ``range(count)``, evenly spread, first and last included.

    >>> sample_positions(5, 3).tolist(), sample_positions(3, 10).tolist()
    ([0, 2, 4], [0, 1, 2])
    """
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


@dataclass(frozen=True)
class RecSummary:
    """What preflight learned of one RecordIO file."""

    count: int  # records
    num_classes: int  # 1 + the largest label (for a held-out file: the training data's)
    scanned_all: bool  # every label was read (else an evenly spread LABEL_SCAN_LIMIT of them)
    image_size: tuple[int, int] | None  # (width, height) of the sampled images, if their headers say


def check_rec(data: str, index: RecIndex, train_classes: int | None = None) -> RecSummary:
    """Check the labels and a sample of the images of a RecordIO file; raise :class:`DataError`.

    Args:
        data: the ``data=`` text, for messages.
        index: the file's index (:func:`read_rec_index`).
        train_classes: for a held-out file, the training data's number of classes (its labels
            must lie below it); None for the training file (every class must have a record).
    """
    where = f"data={data!r}"
    rec, count = index.rec, len(index.offsets)
    positions = sample_positions(count, LABEL_SCAN_LIMIT)
    starts = index.offsets[positions]
    size = os.path.getsize(rec)
    short = np.flatnonzero(starts + 8 + _IR_HEADER > size)
    if short.size:
        p = int(positions[short[0]])
        raise DataError(f"{where}: {index.record(p)} of {rec} starts at byte {starts[short[0]]}, too near the end "
                        f"of the file ({size} bytes) to hold an image record")
    heads = np.memmap(rec, dtype=np.uint8, mode="r")[starts[:, None] + np.arange(16)]
    words = np.ascontiguousarray(heads).view("<u4")  # magic, length, flag, label (as bits)
    labels = np.ascontiguousarray(heads[:, 12:16]).view("<f4")[:, 0].astype(np.float64)
    for test, problem in (
        (words[:, 0] != RECORDIO_MAGIC, "is not a record: its index points at bytes that are no RecordIO header "
                                        "(not its index, or corrupt)"),
        ((words[:, 1] & _LENGTH_MASK) < _IR_HEADER, "is too short to hold an image record (label header and image)"),
        (words[:, 2] != 0, "holds a multi-value label; labels must be one class index per image"),
        (~np.isfinite(labels), "has label {label}; labels must be class indices 0, 1, 2, ..."),
        (labels != np.round(labels), "has label {label}; labels must be whole numbers (class indices 0, 1, 2, ...)"),
        (labels < 0, "has label {label:g}; labels must be class indices 0, 1, 2, ..."),
    ):
        bad = np.flatnonzero(test)
        if bad.size:
            first = int(bad[0])
            others = f" ({bad.size} of the {len(positions)} records read are like it)" if bad.size > 1 else ""
            raise DataError(f"{where}: {index.record(int(positions[first]))} of {rec} "
                            f"{problem.format(label=labels[first])}{others}")
    top = int(labels.max())
    if train_classes is None:
        num_classes = top + 1
        if num_classes < 2:
            raise DataError(f"{where}: every label of {rec} is 0: a classifier needs at least two classes "
                            "(labels 0, 1, ...)")
        present = np.unique(labels).astype(np.int64)
        if len(positions) == count and len(present) < num_classes:
            missing = sorted(set(range(num_classes)) - set(present.tolist()))
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise DataError(f"{where}: the labels of {rec} run from {int(present[0])} to {top}, but class(es) "
                            f"{shown} ({len(missing)} of {num_classes}) have no record: labels must be class "
                            f"indices 0 to K-1 with every class present (labels counted from 1, or offset?)")
    else:
        num_classes = train_classes
        above = np.flatnonzero(labels >= train_classes)
        if above.size:
            first = int(above[0])
            raise DataError(f"{where}: {index.record(int(positions[first]))} of the held-out file {rec} has label "
                            f"{labels[first]:g}, but the training data has {train_classes} classes (labels 0 to "
                            f"{train_classes - 1})" + (f"; {above.size} held-out records are like it"
                                                       if above.size > 1 else ""))
    image_size = _check_rec_images(where, index)
    return RecSummary(count, num_classes, len(positions) == count, image_size)


def _check_rec_images(where: str, index: RecIndex) -> tuple[int, int] | None:
    """The sampled records must hold images of one size (as far as their headers tell)."""
    first: tuple[int, tuple[int, int]] | None = None
    fd = os.open(index.rec, os.O_RDONLY)
    try:
        for p in sample_positions(len(index.offsets), IMAGE_SAMPLE).tolist():
            offset = int(index.offsets[p])
            length = (int(np.frombuffer(os.pread(fd, 4, offset + 4), dtype="<u4")[0]) & _LENGTH_MASK) - _IR_HEADER
            head = os.pread(fd, min(length, HEAD_BYTES), offset + 8 + _IR_HEADER)
            problem = image_problem(head)
            if problem:
                raise DataError(f"{where}: {index.record(p)} of {index.rec} {problem}")
            size = image_size(head)
            if size is None:
                continue
            if first is None:
                first = (p, size)
            elif size != first[1]:
                raise DataError(
                    f"{where}: {index.record(p)} of {index.rec} is a {size[0]}x{size[1]} image, "
                    f"{index.record(first[0])} is {first[1][0]}x{first[1][1]}: every image of a RecordIO source "
                    "must have one size (resize them when packing, e.g. im2rec --resize)"
                )
    finally:
        os.close(fd)
    return None if first is None else first[1]


# --- images --------------------------------------------------------------------------

_SIGNATURES = (  # formats OpenCV (MXNet's decoder) reads, by their first bytes
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def image_problem(head: bytes) -> str | None:
    """What is wrong with an image by its first bytes (None: it looks like an image).

    >>> image_problem(b"") is not None, image_problem(b"hello, world") is not None
    (True, True)
    >>> image_problem(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(20)) is None
    True
    """
    if not head:
        return "is empty (0 bytes): not an image"
    if any(head.startswith(signature) for signature, _ in _SIGNATURES):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return None
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return None  # PBM, PGM, PPM
    shown = head[:12].decode("ascii", "replace") if head[:12].isascii() else head[:12].hex(" ")
    return f"is not an image: its first bytes ({shown!r}) are those of no image format (JPEG, PNG, BMP, TIFF, WebP, PNM)"


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, None if ``head`` does not tell."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = np.frombuffer(head[16:24], dtype=">u4")
        return int(width), int(height)
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(head[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = int.from_bytes(head[at + 5:at + 7], "big"), int.from_bytes(head[at + 7:at + 9], "big")
            return width, height
        at += 2 + length
    return None


# --- image folders -------------------------------------------------------------------


def folder_classes(root: str) -> list[tuple[str, list[str]]]:
    """(class folder, its image files) in ImageFolderDataset's order (sorted; every
    sub-folder is a class, its label its position)."""
    classes = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            files = [os.path.join(path, f) for f in sorted(os.listdir(path))
                     if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(os.path.join(path, f))]
            classes.append((name, files))
    return classes


def check_folder(data: str, root: str) -> int:
    """Check an image folder's classes and a sample of its images; return the number of images.

    Raises:
        DataError: no class folder holds an image, only one does, a class folder holds none,
            or a sampled file is empty or not an image.
    """
    where = f"data={data!r}"
    classes = folder_classes(root)
    filled = [name for name, files in classes if files]
    if not filled:
        raise DataError(f"{where}: {root} has no class sub-folder holding an image "
                        f"({', '.join(IMAGE_EXTENSIONS)}); expected {root}/CLASS/IMAGE")
    if len(filled) < 2:
        raise DataError(f"{where}: {root} has one class folder with images ({filled[0]}): a classifier needs at "
                        f"least two classes, one sub-folder of images per class")
    empty = [name for name, files in classes if not files]
    if empty:
        raise DataError(f"{where}: class folder {os.path.join(root, empty[0])} holds no image "
                        f"({', '.join(IMAGE_EXTENSIONS)}): every sub-folder of {root} is a class, and a class "
                        "needs images")
    files = [path for _, paths in classes for path in paths]
    for p in sample_positions(len(files), IMAGE_SAMPLE).tolist():
        with open(files[p], "rb") as handle:
            head = handle.read(64)
        problem = image_problem(head)
        if problem:
            raise DataError(f"{where}: image file {files[p]} {problem}")
    return len(files)
