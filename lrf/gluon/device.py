"""Device names ("cpu", "gpu", "gpu:N") to MXNet contexts, with a clear error when absent."""

from __future__ import annotations

import mxnet as mx

from lrf.config import DeviceSpec, parse_device_spec
from lrf.engine import check_device
from lrf.gluon.engine import NO_GPU_HINT


def parse_device(device: str | DeviceSpec) -> mx.Context:
    """The MXNet context of ``"cpu"`` (default everywhere in lrf), ``"gpu"`` (= ``"gpu:0"``)
    or ``"gpu:N"`` (text, or already parsed).

    Raises:
        ValueError: an unknown name, or a GPU MXNet does not see (e.g. the CPU build
            of MXNet, which sees no GPU at all).

    >>> parse_device("cpu")
    cpu(0)
    """
    spec = device if isinstance(device, DeviceSpec) else parse_device_spec(device)
    if spec.kind == "cpu":
        check_device(spec, str(device), visible=0)
        return mx.cpu()
    check_device(spec, str(device), _num_gpus(), NO_GPU_HINT)
    return mx.gpu(spec.index)


def _num_gpus() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build on a machine without a driver raises here
        return 0
