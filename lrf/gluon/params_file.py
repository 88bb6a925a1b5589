"""MXNet parameter files read without MXNet: which arrays a file holds (names, shapes, types).

Enough to refuse, at a process's entry and in milliseconds, an ``init_params`` that
is no parameter file, and to say exactly why a file of another network does not fit
(:func:`check_fits`), by comparing it with the parameters of the network itself,
freshly initialised. Only the headers are read; the arrays' data is skipped. The
format is MXNet's NDArray list (``mx.nd.save``, ``Block.save_parameters``), as MXNet
1.x writes it (``src/ndarray/ndarray.cc``, ``NDArray::Save``): little-endian,

- ``uint64`` list magic ``0x112``, ``uint64`` reserved, ``uint64`` count, the arrays,
- per array: ``uint32`` array magic (V1, V2 or V3), ``int32`` storage type (V2, V3),
  the storage shape (sparse), the shape (``int32`` ndim, ``int64`` dims), the device
  (2 x ``int32``), ``int32`` type flag, the sparse index types and shapes, the data,
- ``uint64`` count, then per name ``uint64`` length and UTF-8 bytes.
"""

from __future__ import annotations

import os
import struct
from collections import Counter

from lrf.params_layout import Layout, check_file, compare_layouts, show_shapes

LIST_MAGIC = 0x112
ARRAY_MAGICS = {0xF993FAC8: 1, 0xF993FAC9: 2, 0xF993FACA: 3}  # NDARRAY_V1/V2/V3_MAGIC
DTYPES = {0: ("float32", 4), 1: ("float64", 8), 2: ("float16", 2), 3: ("uint8", 1), 4: ("int32", 4),
          5: ("int8", 1), 6: ("int64", 8), 7: ("bool", 1), 8: ("int16", 2), 9: ("uint16", 2),
          10: ("uint32", 4), 11: ("uint64", 8), 12: ("bfloat16", 2)}
SPARSE_AUX = {1: 1, 2: 2}  # storage type -> index arrays: row_sparse has one, csr two


class _Reader:
    def __init__(self, handle, size: int):
        self.handle, self.size = handle, size

    def take(self, fmt: str):
        count = struct.calcsize("<" + fmt)
        data = self.handle.read(count)
        if len(data) != count:
            raise ValueError("it ends too early (truncated?)")
        return struct.unpack("<" + fmt, data)

    def skip(self, count: int) -> None:
        if count < 0 or self.handle.tell() + count > self.size:
            raise ValueError("it ends too early (truncated?)")
        self.handle.seek(count, os.SEEK_CUR)

    def shape(self, version: int) -> tuple[int, ...] | None:
        (ndim,) = self.take("i")
        if ndim < 0 or (ndim == 0 and version < 3):
            return None  # an empty array: nothing follows
        if ndim > 32:
            raise ValueError(f"it declares an array of {ndim} dimensions")
        return self.take(f"{ndim}q")


def _read_array(reader: _Reader) -> tuple[tuple[int, ...], str]:
    (magic,) = reader.take("I")
    version = ARRAY_MAGICS.get(magic)
    if version is None:
        if magic > 32:
            raise ValueError(f"an array starts with 0x{magic:08x}, not an MXNet array header")
        shape = reader.take(f"{magic}I") if magic else None  # before V1: the magic is ndim, dims are uint32
        storage, stored = 0, None
    else:
        storage = reader.take("i")[0] if version >= 2 else 0
        stored = reader.shape(version) if SPARSE_AUX.get(storage) else None  # sparse: the stored values' shape
        shape = reader.shape(version)
    if shape is None:
        return (), "none"
    reader.take("2i")  # the device it was saved from
    dtype, itemsize = _dtype(reader.take("i")[0])
    aux = [(_dtype(reader.take("i")[0])[1], reader.shape(version) or ()) for _ in range(SPARSE_AUX.get(storage, 0))]
    reader.skip(itemsize * _size(stored if aux else shape))
    for aux_itemsize, aux_shape in aux:
        reader.skip(aux_itemsize * _size(aux_shape))
    return tuple(shape), dtype


def _dtype(flag: int) -> tuple[str, int]:
    if flag not in DTYPES:
        raise ValueError(f"an array has the unknown type flag {flag}")
    return DTYPES[flag]


def _size(shape) -> int:
    total = 1
    for dim in shape or ():
        total *= max(dim, 0)
    return total


def read_layout(path: str | os.PathLike) -> Layout:
    """Name -> (shape, dtype) of every array in the MXNet parameter file ``path``.

    Raises:
        OSError: the file cannot be opened.
        ValueError: the file is not an MXNet parameter file, or is truncated; the
            message says what was found.
    """
    with open(path, "rb") as handle:
        reader = _Reader(handle, os.fstat(handle.fileno()).st_size)
        try:
            magic, _, count = reader.take("3Q")
        except ValueError:
            raise ValueError("it is too short to be an MXNet parameter file") from None
        if magic != LIST_MAGIC:
            raise ValueError("it does not start like an MXNet parameter file (Block.save_parameters, mx.nd.save)")
        if count > reader.size // 4:  # every array takes at least its 4-byte header
            raise ValueError(f"it declares {count} arrays in {reader.size} bytes")
        arrays = [_read_array(reader) for _ in range(count)]
        (names,) = reader.take("Q")
        if names != count:
            raise ValueError(f"it holds {count} arrays but {names} names")
        keys = []
        for _ in range(names):
            (length,) = reader.take("Q")
            if length > reader.size:
                raise ValueError("a name is longer than the file")
            keys.append(reader.take(f"{length}s")[0].decode("utf-8", errors="replace"))
    return dict(zip(keys, arrays))


def check_init_params(value: str | os.PathLike | None) -> str | None:
    """The entry check of an ``init_params`` parameter (None: none given): an MXNet
    parameter file; return the value.

    Raises:
        ValueError: naming ``init_params`` and the value: missing, not a file (a
            folder), unreadable, or no MXNet parameter file.
    """
    return check_file(value, read_layout)


def check_fits(value: str | os.PathLike, reference: str | os.PathLike, model: str = "the model") -> None:
    """Raise ValueError naming ``init_params`` unless the file ``value`` holds the arrays of
    ``reference`` (the same network's parameters, freshly saved): the same names with the
    same shapes and types, what ``Block.load_parameters`` asks. Files saved the older way
    (``collect_params().save``, names without dots) are compared by their shapes alone."""
    given, wanted = read_layout(value), read_layout(reference)
    if not any("." in name for name in given):  # MXNet loads these by prefix: compare what it can
        given_shapes, wanted_shapes = Counter(given.values()), Counter(wanted.values())
        if given_shapes != wanted_shapes:
            extra, missing = given_shapes - wanted_shapes, wanted_shapes - given_shapes
            raise ValueError(f"init_params={str(value)!r} does not fit {model}: the file lacks arrays of shape "
                             f"{show_shapes(missing)}; its arrays of shape {show_shapes(extra)} are not in {model}")
        return
    compare_layouts(value, given, wanted, model)
