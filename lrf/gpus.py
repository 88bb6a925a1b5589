"""Which GPUs are here, and whether a build's device code runs on them: read from the NVIDIA
driver (``nvidia-smi``), without any framework, so a run is refused before it starts rather
than when every kernel fails ("no kernel image is available for execution on the device").

A build carries machine code (cubins) for some architectures and maybe PTX for some: a cubin
for ``sm_XY`` runs on a GPU of compute capability X.Z with Z >= Y (same major); PTX for
``compute_XY`` is compiled by the driver for any capability >= X.Y.

>>> runs_on((8, 9), Architectures(cubins=((8, 0), (8, 6))))  # L4 through the 8.6 cubin
True
>>> runs_on((9, 0), Architectures(cubins=((8, 0), (8, 6))))  # H100: no 9.x cubin, no PTX
False
>>> runs_on((9, 0), Architectures(cubins=((8, 0),), ptx=((8, 0),)))
True
>>> parse_query("0, GPU-1b2c, NVIDIA H100 80GB HBM3, 9.0\\n")
[Gpu(index=0, uuid='GPU-1b2c', name='NVIDIA H100 80GB HBM3', capability=(9, 0))]
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Sequence

QUERY = ("--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader")
QUERY_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Gpu:
    index: int  # the driver's index (nvidia-smi's), not CUDA's order after CUDA_VISIBLE_DEVICES
    uuid: str
    name: str
    capability: tuple[int, int]

    @property
    def capability_text(self) -> str:
        return f"{self.capability[0]}.{self.capability[1]}"


@dataclass(frozen=True)
class Architectures:
    """The device code a build carries: cubins and PTX, as (major, minor) capabilities."""

    cubins: tuple[tuple[int, int], ...]
    ptx: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        parts = [f"sm_{a}{b}" for a, b in self.cubins] + [f"compute_{a}{b} (PTX)" for a, b in self.ptx]
        return ", ".join(parts) + ("" if self.ptx else ", no PTX")


def runs_on(capability: tuple[int, int], build: Architectures) -> bool:
    major, minor = capability
    return (any(a == major and b <= minor for a, b in build.cubins)
            or any((a, b) <= capability for a, b in build.ptx))


def parse_query(text: str) -> list[Gpu]:
    """The GPUs of ``nvidia-smi --query-gpu=index,uuid,name,compute_cap --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            raise ValueError(f"unexpected nvidia-smi line {line!r}")
        index, uuid, name, cap = fields
        major, _, minor = cap.partition(".")
        gpus.append(Gpu(int(index), uuid, name, (int(major), int(minor or 0))))
    return gpus


def query_gpus() -> list[Gpu] | None:
    """This machine's GPUs from the driver; None when it cannot be asked (no ``nvidia-smi``,
    or it fails: then nothing is known, and nothing is refused on that account)."""
    program = shutil.which("nvidia-smi")
    if program is None:
        return None
    try:
        done = subprocess.run([program, *QUERY], capture_output=True, text=True, timeout=QUERY_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_query(done.stdout)
    except ValueError:
        return None


def visible(gpus: Sequence[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs CUDA numbers 0, 1, ... under ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs, as
    CUDA reads it: up to the first entry it cannot match); all of them when it is unset."""
    if cuda_visible_devices is None:
        return list(gpus)
    by_index = {str(g.index): g for g in gpus}
    chosen = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        match = by_index.get(entry) or next((g for g in gpus if entry and g.uuid.startswith(entry)), None)
        if match is None:
            break
        chosen.append(match)
    return chosen


def check_runs_on(device_indices: Sequence[int], device_text: str, gpus: Sequence[Gpu], build: Architectures,
                  what: str, alternative: str) -> None:
    """Raise ValueError, naming the device, the GPU, its capability, what ``build`` (``what``)
    carries and ``alternative``, if a selected GPU (CUDA's index) has no code in the build."""
    for n in device_indices:
        if n >= len(gpus):
            continue  # counted elsewhere (lrf.engine.check_device)
        gpu = gpus[n]
        if not runs_on(gpu.capability, build):
            raise ValueError(
                f"device={device_text!r}: GPU {n} ({gpu.name}) has compute capability {gpu.capability_text}, "
                f"and {what} carries device code for {build.describe()} only, so no kernel of it can run there; "
                f"{alternative}")


def cuda_visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def driver_gpu_count() -> int:
    """The NVIDIA driver's GPUs, as many as ``CUDA_VISIBLE_DEVICES`` lets through, read from
    ``/proc`` (no CUDA library loaded): what an engine's CUDA build could use here."""
    try:
        count = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count
