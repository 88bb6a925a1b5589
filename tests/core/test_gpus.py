"""The GPU refusal (lrf.gpus, lrf.engine.check_gpu_code) on nvidia-smi's answers for an H100,
an A100, an L4, a V100, a B200, a mixed machine and none: what MXNet 1.9.1's CUDA build and the
locked torch can run, named in one line before any work. The answers are written in nvidia-smi's format for
``--query-gpu=index,uuid,name,compute_cap --format=csv,noheader`` (UUIDs shortened)."""

from __future__ import annotations

import os
import stat

import pytest

from lrf.config import Setup
from lrf.engine import check_gpu_code, engine_for
from lrf.gpus import parse_query, query_gpus, runs_on, visible

H100 = "0, GPU-5a8d7c2e-13f4-4a1b, NVIDIA H100 80GB HBM3, 9.0\n"
A100 = "0, GPU-0c1b9f3d-77aa-4e02, NVIDIA A100-SXM4-40GB, 8.0\n"
L4 = "0, GPU-9e21c4b7-0d5f-4c33, NVIDIA L4, 8.9\n"
A100_AND_H100 = A100 + "1, GPU-5a8d7c2e-13f4-4a1b, NVIDIA H100 80GB HBM3, 9.0\n"
NONE = "No devices were found\n"  # with exit status 6

MXNET = engine_for("mxnet")


def _check(answer: str, device: str, cuda_visible: str | None = None) -> None:
    setup = Setup(device=device)
    check_gpu_code(setup, MXNET, visible(parse_query(answer), cuda_visible))


@pytest.mark.parametrize("answer", [A100, L4])
def test_gpus_that_mxnet_1_9_1_has_code_for_run(answer):
    _check(answer, "gpu:0")  # A100: the sm_80 cubin; L4 (8.9): the sm_86 one


def test_a_hopper_gpu_is_refused_in_one_line_naming_device_gpu_capability_build_and_alternative():
    with pytest.raises(ValueError) as refused:
        _check(H100, "gpu:0")
    message = str(refused.value)
    assert "\n" not in message
    for part in ("device='gpu:0'", "NVIDIA H100 80GB HBM3", "compute capability 9.0", "sm_86", "no PTX",
                 "MXNet 1.9.1", "device='cpu'", "engine='torch'"):
        assert part in message, (part, message)


V100 = "0, GPU-3f9a0d11-2b6c-47e8, Tesla V100-SXM2-16GB, 7.0\n"
B200 = "0, GPU-7d02e6aa-9c41-4f7b, NVIDIA B200, 10.0\n"


@pytest.mark.parametrize("answer", [H100, A100, L4, B200])
def test_the_gpus_mxnet_cannot_run_on_run_the_torch_engine(answer):
    check_gpu_code(Setup(device="gpu:0", engine="torch"), engine_for("torch"), visible(parse_query(answer), None))


def test_a_gpu_older_than_the_torch_build_is_refused_naming_it():
    with pytest.raises(ValueError) as refused:
        check_gpu_code(Setup(device="gpu:0", engine="torch"), engine_for("torch"), visible(parse_query(V100), None))
    message = str(refused.value)
    for part in ("Tesla V100-SXM2-16GB", "compute capability 7.0", "sm_75", "torch 2.14", "device='cpu'"):
        assert part in message, (part, message)
    _check(V100, "gpu:0")  # which MXNet's build runs (its sm_70 code)


def test_the_selected_gpu_is_the_one_checked_through_cuda_visible_devices():
    _check(A100_AND_H100, "gpu:0")  # the A100
    with pytest.raises(ValueError, match=r"device='gpu:0,gpu:1': GPU 1 \(NVIDIA H100"):
        _check(A100_AND_H100, "gpu:0,gpu:1")
    with pytest.raises(ValueError, match=r"GPU 0 \(NVIDIA H100"):
        _check(A100_AND_H100, "gpu:0", cuda_visible="1")  # CUDA's GPU 0 is the driver's 1
    with pytest.raises(ValueError, match=r"GPU 0 \(NVIDIA H100"):
        _check(A100_AND_H100, "gpu:0", cuda_visible="GPU-5a8d7c2e")  # by UUID prefix, as CUDA takes it
    _check(A100_AND_H100, "gpu:0", cuda_visible="0,1")


def test_capability_rules_for_cubins_and_ptx():
    code = MXNET.GPU_CODE
    assert [runs_on(c, code) for c in [(5, 0), (5, 2), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]] \
        == [True, True, True, True, True, True, False, False, False]
    assert not runs_on((3, 7), code)  # a Kepler K80: below every cubin


def _fake_smi(folder, stdout: str, status: int) -> dict:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_query_reads_the_driver_and_knows_nothing_where_it_cannot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, A100_AND_H100, 0)["PATH"])
    assert [(g.index, g.name, g.capability) for g in query_gpus()] == [
        (0, "NVIDIA A100-SXM4-40GB", (8, 0)), (1, "NVIDIA H100 80GB HBM3", (9, 0))]
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, NONE, 6)["PATH"])
    assert query_gpus() is None  # "No devices were found": nothing known, nothing refused here
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert query_gpus() is None  # no nvidia-smi


def test_a_line_nvidia_smi_never_writes_is_an_error():
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_query("0, NVIDIA H100, 9.0\n")
