"""PyTorch state-dict files read without PyTorch: which tensors a file holds (names, shapes, types).

Enough to refuse, at a process's entry and in milliseconds, an ``init_params`` that
is no state-dict file, and to say exactly why a file of another network does not fit
(:func:`check_fits`). The format is what ``torch.save(model.state_dict(), path)``
writes since torch 1.6 (``torch/serialization.py``, ``_save``): a zip archive of one
folder holding ``data.pkl``, the pickled dict, whose tensors refer to their storages
by key, and ``data/<key>``, each storage's bytes, which are never read.

Unpickling runs whatever callables the pickle names, so ``data.pkl`` is read by an
unpickler that knows only the few names a state dict uses (:class:`_Unpickler`) and
answers them with small stand-ins that record a shape and a type; any other name
(a whole model, a TorchScript archive, ``os.system``) is refused, never imported.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

from lrf.params_layout import Layout, check_file, compare_layouts

NOT_STATE_DICT = "it is not a PyTorch state-dict file (saved with torch.save(model.state_dict(), path))"
MXNET_MAGIC = struct.pack("<Q", 0x112)  # how an MXNet parameter file starts (lrf.gluon.params_file)
MAX_PICKLE = 256 << 20  # bytes: a state dict's pickle takes about 150 bytes a tensor
# the storage classes torch still names for the older dtypes (torch.storage._dtype_to_storage_type_map)
# -> (dtype, bytes an element); UntypedStorage counts bytes, its tensors name their dtype
STORAGES = {"DoubleStorage": ("float64", 8), "FloatStorage": ("float32", 4), "HalfStorage": ("float16", 2),
            "LongStorage": ("int64", 8), "IntStorage": ("int32", 4), "ShortStorage": ("int16", 2),
            "CharStorage": ("int8", 1), "ByteStorage": ("uint8", 1), "BoolStorage": ("bool", 1),
            "BFloat16Storage": ("bfloat16", 2), "ComplexDoubleStorage": ("complex128", 16),
            "ComplexFloatStorage": ("complex64", 8), "QInt8Storage": ("qint8", 1),
            "QInt32Storage": ("qint32", 4), "QUInt8Storage": ("quint8", 1),
            "QUInt4x2Storage": ("quint4x2", 1), "QUInt2x4Storage": ("quint2x4", 1)}
# the dtypes a tensor names beside an UntypedStorage (torch.storage._new_dtypes), pickled as torch.<name>
NEW_DTYPES = {"uint16", "uint32", "uint64", "complex32", "bcomplex32", "float8_e5m2", "float8_e4m3fn",
              "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
              "bits1x8", "bits2x4", "bits4x2"}


class _Refused(ValueError):
    pass


@dataclass(frozen=True)
class _StorageType:
    dtype: str | None  # None: UntypedStorage
    itemsize: int


@dataclass(frozen=True)
class _Storage:
    dtype: str | None
    key: str


@dataclass(frozen=True)
class _DType:
    name: str


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    dtype: str


def _shape(size) -> tuple[int, ...]:
    if not isinstance(size, tuple) or not all(isinstance(dim, int) and dim >= 0 for dim in size):
        raise _Refused(f"a tensor has the size {size!r}, not a tuple of sizes")
    return size


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, _Storage) or storage.dtype is None:
        raise _Refused("a tensor refers to no typed storage")
    return _Tensor(_shape(size), storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
        raise _Refused("a tensor refers to no storage or no dtype")
    return _Tensor(_shape(size), dtype.name)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _Tensor):
        raise _Refused("a parameter holds no tensor")
    return data


REBUILDS = {"_rebuild_tensor_v2": _rebuild_tensor_v2,
            "_rebuild_tensor_v3": _rebuild_tensor_v3,  # a tensor of NEW_DTYPES
            "_rebuild_parameter": _rebuild_parameter,  # nn.Parameter (a dict of named_parameters())
            "_rebuild_parameter_with_state": _rebuild_parameter}  # one with Python attributes
DTYPES = {dtype for dtype, _ in STORAGES.values()} | NEW_DTYPES


class _Call:
    """A rebuild function behind a fresh object per use: a pickle can set attributes
    (BUILD) on what it names, and must not reach the module's functions."""

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


class _Unpickler(pickle.Unpickler):
    """Answers the names a state dict uses (``collections.OrderedDict``, ``torch._utils``'s
    REBUILDS, ``torch.<STORAGES>``, ``torch.storage.UntypedStorage``, ``torch.<DTYPES>``) with
    fresh stand-ins, for the reason :class:`_Call` gives; refuses every other name."""

    def __init__(self, data: bytes, records: dict[str, int], folder: str):
        super().__init__(io.BytesIO(data))
        self.records, self.folder = records, folder

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):  # a state dict, and a tensor's backward hooks
            return OrderedDict
        if module == "torch._utils" and name in REBUILDS:
            return _Call(REBUILDS[name])
        if module == "torch" and name in STORAGES:
            return _StorageType(*STORAGES[name])
        if (module, name) == ("torch.storage", "UntypedStorage"):
            return _StorageType(None, 1)
        if module == "torch" and name in DTYPES:
            return _DType(name)
        raise _Refused(f"{NOT_STATE_DICT}: its data.pkl names {module}.{name}, which no state dict holds "
                       "(only tensors are read here; nothing the file names is imported)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise _Refused(f"its data.pkl refers to {pid!r}, not to a storage")
        _, storage_type, key, _, numel = pid
        record, size = f"{self.folder}/data/{key}", numel * storage_type.itemsize
        if self.records.get(record) != size:
            found = "missing" if record not in self.records else f"{self.records[record]} bytes"
            raise _Refused(f"the storage {record} of {size} bytes is {found} (truncated?)")
        return _Storage(storage_type.dtype, key)


def read_layout(path: str | os.PathLike) -> Layout:
    """Name -> (shape, dtype) of every tensor in the state-dict file ``path``.

    Raises:
        OSError: the file cannot be opened.
        ValueError: the file is not a state dict saved by ``torch.save`` (or is
            truncated, or names anything but tensors); the message says what was found.
    """
    with open(path, "rb") as handle:
        start = handle.read(8)
        if not zipfile.is_zipfile(handle):
            raise ValueError(f"{NOT_STATE_DICT}: {_what_else(start)}")
        try:
            with zipfile.ZipFile(handle) as archive:
                records = {info.filename: info.file_size for info in archive.infolist()}
                pickles = [name for name in records if name.count("/") == 1 and name.endswith("/data.pkl")]
                if "constants.pkl" in {name.rpartition("/")[2] for name in records}:
                    raise _Refused(f"{NOT_STATE_DICT}: it is a TorchScript archive (torch.jit.save)")
                if len(pickles) != 1:
                    raise _Refused(f"{NOT_STATE_DICT}: it is a zip archive with "
                                   f"{'no' if not pickles else len(pickles)} <folder>/data.pkl")
                if records[pickles[0]] > MAX_PICKLE:
                    raise _Refused(f"its data.pkl takes {records[pickles[0]]} bytes, more than a state dict's")
                data = archive.read(pickles[0])
            loaded = _Unpickler(data, records, pickles[0].partition("/")[0]).load()
        except _Refused:
            raise
        except Exception as error:  # a damaged archive or pickle raises nearly anything
            raise ValueError(f"its data.pkl cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{NOT_STATE_DICT}: it holds a {type(loaded).__name__}, not a dict of tensors")
    layout = {}
    for name, tensor in loaded.items():
        if not isinstance(name, str):
            raise ValueError(f"{NOT_STATE_DICT}: it has the key {name!r}, not a tensor's name")
        if not isinstance(tensor, _Tensor):
            raise ValueError(f"{NOT_STATE_DICT}: its entry {name!r} is a {type(tensor).__name__}, not a tensor")
        layout[name] = (tensor.shape, tensor.dtype)
    return layout


def _what_else(start: bytes) -> str:
    if start == MXNET_MAGIC:
        return "it is an MXNet parameter file"
    if start[:1] == b"\x80":  # a pickle's protocol opcode
        return "it is a bare pickle, as torch.save wrote before torch 1.6 or with _use_new_zipfile_serialization=False"
    return "it is not a zip archive"


def check_init_params(value: str | os.PathLike | None) -> str | None:
    """The entry check of an ``init_params`` parameter (None: none given): a PyTorch
    state-dict file; return the value.

    Raises:
        ValueError: naming ``init_params`` and the value: missing, not a file (a
            folder), unreadable, or no state-dict file.
    """
    return check_file(value, read_layout)


def check_fits(value: str | os.PathLike, reference: str | os.PathLike, model: str = "the model") -> None:
    """Raise ValueError naming ``init_params`` unless the file ``value`` holds the tensors of
    ``reference`` (the same network's state dict, freshly saved): the same names with the
    same shapes and types."""
    compare_layouts(value, read_layout(value), read_layout(reference), model, "tensors")
