"""Device names ("cpu", "gpu", "gpu:N") to MXNet contexts, with a clear error when absent."""

from __future__ import annotations

import re

import mxnet as mx

_DEVICE = re.compile(r"^(cpu|gpu)(?::(\d+))?$")


def parse_device(device: str) -> mx.Context:
    """``"cpu"`` (default everywhere in lrf), ``"gpu"`` (= ``"gpu:0"``) or ``"gpu:N"``.

    Raises:
        ValueError: an unknown name, or a GPU this machine does not have (e.g. the CPU
            build of MXNet, which sees no GPU at all).

    >>> parse_device("cpu")
    cpu(0)
    """
    match = _DEVICE.match(device) if isinstance(device, str) else None
    if match is None:
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got device={device!r}")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        return mx.cpu(index)
    visible = _num_gpus()
    if index >= visible:
        hint = " (this MXNet is the CPU build, or CUDA sees no GPU)" if visible == 0 else ""
        raise ValueError(f"device={device!r} asks for GPU {index}, but this machine has {visible} visible GPU(s){hint}")
    return mx.gpu(index)


def _num_gpus() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build on a machine without a driver raises here
        return 0
