"""The CUDA 11 libraries of MXNet's GPU build, made findable before MXNet loads.

mxnet-cu117 (the ``mxnet-gpu`` dependency group) bundles no CUDA library: its ``libmxnet.so``
looks for them only beside itself (``$ORIGIN``). The lock installs them as NVIDIA's
``nvidia-*-cu11`` wheels, each under ``site-packages/nvidia/<name>/lib``. Loading each one
by its path, globally and in dependency order, before ``import mxnet`` lets the dynamic
linker satisfy ``libmxnet.so``'s needs with them (it matches a loaded library by its
soname), with no ``LD_LIBRARY_PATH`` set by hand: :mod:`lrf.gluon` does it on import, so
every process that runs MXNet through lrf (the CLI, a flow's job processes, Dask workers)
does it before its first MXNet import. The CPU build needs none of them: nothing is loaded (nor
where NVIDIA's wheels are another framework's, torch's).

``python -m lrf.gluon`` says what was found and whether ``libmxnet.so``
then loads (on a machine without NVIDIA's driver, only ``libcuda.so.1`` is missing).
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from importlib import metadata
from pathlib import Path

# (package folder under nvidia/, soname), in the order they need each other: what
# mxnet-cu117 1.9.1's libmxnet.so needs (readelf -d), cuBLAS's cuBLASLt before it
LIBRARIES = (
    ("cuda_runtime", "libcudart.so.11.0"),
    ("cuda_nvrtc", "libnvrtc.so.11.2"),
    ("nvtx", "libnvToolsExt.so.1"),
    ("cublas", "libcublasLt.so.11"),
    ("cublas", "libcublas.so.11"),
    ("cufft", "libcufft.so.10"),
    ("curand", "libcurand.so.10"),
    ("cusparse", "libcusparse.so.11"),
    ("cusolver", "libcusolver.so.11"),
    ("cudnn", "libcudnn.so.8"),
    ("nccl", "libnccl.so.2"),
)

_loaded: dict[str, str] = {}  # soname -> path, once per process


def nvidia_root() -> Path | None:
    """The ``nvidia`` folder of NVIDIA's wheels in this environment, or None (none installed)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cuda_build_installed() -> bool:
    """Whether the MXNet installed here is a CUDA build (``mxnet-cuNNN``; the CPU build is ``mxnet``)."""
    return any((dist.metadata["Name"] or "").lower().startswith("mxnet-cu") for dist in metadata.distributions())


def make_findable() -> dict[str, str]:
    """Load the CUDA libraries of NVIDIA's wheels installed here (see the module's text),
    once per process; return ``{soname: path}`` of those loaded. None installed (the CPU
    build): nothing is loaded. A library that fails to load is left to MXNet to report."""
    if _loaded or "mxnet" in sys.modules:  # done, or too late to matter
        return dict(_loaded)
    root = nvidia_root()
    # NVIDIA's wheels may be another framework's (torch's CUDA 13 libnccl.so.2 has the same
    # soname as CUDA 11's): the CPU build of MXNet loads none of them
    if root is None or not cuda_build_installed():
        return {}
    for folder, soname in LIBRARIES:
        path = root / folder / "lib" / soname
        if path.is_file():
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            _loaded[soname] = str(path)
    return dict(_loaded)


def main() -> int:
    loaded = make_findable()
    root = nvidia_root()
    if not cuda_build_installed():
        print("MXNet's CPU build: it needs no CUDA library, none is loaded")
    else:
        print(f"NVIDIA wheels: {root if root else 'none installed'}")
    for folder, soname in LIBRARIES:
        print(f"  {soname:22} {loaded.get(soname, 'not loaded')}")
    spec = importlib.util.find_spec("mxnet")
    if spec is None or spec.origin is None:
        print("mxnet: not installed")
        return 1
    library = Path(spec.origin).parent / "libmxnet.so"
    try:
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        print(f"libmxnet.so does not load: {error}")
        return 1
    print(f"libmxnet.so loads: {library}")
    return 0

