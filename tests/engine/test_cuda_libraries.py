"""MXNet's CUDA build from the lock, and its CUDA libraries made findable before MXNet loads
(lrf.gluon.cuda_libraries). The CUDA wheels themselves (2 GB) are not installed here: what
loading them did on this machine is in docs/gpu-and-scale-out.md."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from lrf.gluon.cuda_libraries import LIBRARIES

ROOT = Path(__file__).resolve().parents[2]
# the folder under site-packages/nvidia/ of each NVIDIA wheel
WHEEL_OF_FOLDER = {"cuda_runtime": "nvidia-cuda-runtime-cu11", "cuda_nvrtc": "nvidia-cuda-nvrtc-cu11",
                   "nvtx": "nvidia-nvtx-cu11", "cublas": "nvidia-cublas-cu11", "cufft": "nvidia-cufft-cu11",
                   "curand": "nvidia-curand-cu11", "cusparse": "nvidia-cusparse-cu11",
                   "cusolver": "nvidia-cusolver-cu11", "cudnn": "nvidia-cudnn-cu11", "nccl": "nvidia-nccl-cu11"}


def _lrf_in_the_lock() -> dict:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (lrf,) = [p for p in lock["package"] if p["name"] == "lrf"]
    return lrf


def test_the_lock_holds_both_builds_the_cpu_one_by_default():
    lrf = _lrf_in_the_lock()
    groups = {name: {d["name"] for d in deps} for name, deps in lrf["dev-dependencies"].items()}
    assert groups["mxnet-cpu"] == {"mxnet"}
    assert lrf["default-groups"] == ["dev", "mxnet-cpu"]
    # the CUDA build and a wheel for every library lrf loads before it, nothing else
    assert groups["mxnet-gpu"] == {"mxnet-cu117", *{WHEEL_OF_FOLDER[folder] for folder, _ in LIBRARIES}}
    assert {"mxnet", "mxnet-cu117"}.isdisjoint(d["name"] for d in lrf["dependencies"])
    versions = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    assert versions["mxnet-cu117"] == versions["mxnet"] == "1.9.1"
    assert versions["nvidia-cudnn-cu11"].startswith("8.")  # libcudnn.so.8


def test_the_two_builds_conflict_so_the_gpu_one_alone_is_refused(tmp_path):
    # uv checks the request against the lock's conflicts before touching any environment
    done = subprocess.run(["uv", "sync", "--locked", "--dry-run", "--group", "mxnet-gpu"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ,
                                                                "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")})
    assert done.returncode != 0
    assert "mxnet-cpu" in done.stderr and "mxnet-gpu" in done.stderr and "incompatible" in done.stderr


def test_the_gpu_build_and_the_torch_engine_conflict(tmp_path):
    # both install NVIDIA's libnccl.so.2 at one path (CUDA 11's and CUDA 13's)
    done = subprocess.run(["uv", "sync", "--locked", "--dry-run", "--no-group", "mxnet-cpu", "--group", "mxnet-gpu",
                           "--extra", "torch"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")})
    assert done.returncode != 0
    assert "mxnet-gpu" in done.stderr and "torch" in done.stderr and "incompatible" in done.stderr


def test_the_cpu_build_loads_nothing_and_mxnet_imports():
    # the test command installs the torch extra: NVIDIA's wheels are here, but they are torch's
    code = ("import lrf.gluon, sys; from lrf.gluon.cuda_libraries import make_findable, nvidia_root; "
            "assert 'mxnet' not in sys.modules; print(make_findable(), nvidia_root() is not None); import mxnet")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{}", "True"]


def test_the_diagnosis_names_every_library_and_says_libmxnet_loads():
    done = subprocess.run([sys.executable, "-m", "lrf.gluon"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CPU build: it needs no CUDA library" in done.stdout and "libmxnet.so loads" in done.stdout
    assert all(soname in done.stdout for _, soname in LIBRARIES)


def test_without_mxnet_the_cli_and_the_flow_say_so_in_one_line(tmp_path):
    """An environment of the lock without either MXNet group (a real one, made by uv): both
    entry points refuse at their entry, naming the engine and how to install it."""
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    done = subprocess.run(["uv", "sync", "--locked", "--no-group", "mxnet-cpu", "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for command in (["lrf", "find", "--out", str(tmp_path / "out")],
                    ["lrf-flow", "--output-root", str(tmp_path / "runs")]):
        done = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        (last,) = done.stderr.strip().splitlines()[-1:]
        assert "engine='mxnet' needs MXNet, which is not installed" in last and "Traceback" not in done.stderr
    # nor the torch extra: the torch engine says how to add it
    done = subprocess.run([str(venv / "bin" / "lrf"), "find", "--engine", "torch", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    (last,) = done.stderr.strip().splitlines()[-1:]
    assert done.returncode == 2 and "engine='torch' needs torch and torchvision" in last and "--extra torch" in last
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
