"""Devices as a list, and which job goes where: framework-free, no cluster started."""

import pytest

from lrf.cluster import Slot, _worker_env, local_slots
from lrf.config import DeviceSpec, Setup, parse_devices
from lrf.execution import CPU_AT_ONCE, Execution, cpu_at_once
from lrf.engine import resolve_devices


@pytest.mark.parametrize("text, devices", [
    ("cpu", [("cpu", 0)]),
    ("gpu", [("gpu", 0)]),
    ("gpu:3", [("gpu", 3)]),
    ("gpu:0,gpu:2", [("gpu", 0), ("gpu", 2)]),
    ("gpu:1, gpu", [("gpu", 1), ("gpu", 0)]),
    ("gpu:all", []),  # resolved by the engine, which counts the GPUs
])
def test_device_texts_parse_to_devices(text, devices):
    assert [(d.kind, d.index) for d in parse_devices(text)] == devices


@pytest.mark.parametrize("text, message", [
    ("tpu", "device must be one of"),
    ("gpu:0,,gpu:1", "device must be one of"),
    ("cpu,gpu:0", "device lists name GPUs only"),
    ("gpu:1,gpu:1", "device lists a GPU twice"),
    ("gpu:-1", "device must be one of"),
])
def test_bad_device_texts_are_refused_naming_device(text, message):
    with pytest.raises(ValueError, match=message) as error:
        Setup(device=text)
    assert f"device={text!r}" in str(error.value)


def test_gpu_all_resolves_to_every_visible_gpu_or_is_a_clear_error():
    assert resolve_devices("gpu:all", visible=2) == "gpu:0,gpu:1"
    assert resolve_devices("gpu:1", visible=0) == "gpu:1"  # not a list: checked device by device elsewhere
    with pytest.raises(ValueError, match="device='gpu:all' asks for every GPU, but this machine has no visible GPU"):
        resolve_devices("gpu:all", visible=0)


def test_a_job_names_its_workers_device_and_a_list_sweeps_on_the_first():
    setup = Setup(device="gpu:2,gpu:5")
    assert setup.device_spec == DeviceSpec("gpu", 2)  # the sweep's
    assert setup.on_device("gpu:0").device == "gpu:0" and setup.on_device("gpu:2,gpu:5") is setup


def test_cpu_slots_share_the_cores_and_gpu_slots_see_one_gpu_each(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cpu = local_slots(parse_devices("cpu"), at_once=None, cores=16)
    assert len(cpu) == CPU_AT_ONCE and {s.device for s in cpu} == {"cpu"}
    assert _worker_env(cpu[0], len(cpu), cores=16) == {"OMP_NUM_THREADS": "5"}
    assert _worker_env(cpu[0], len(cpu), cores=2) == {"OMP_NUM_THREADS": "1"}  # 3 workers on 2 cores
    # no more workers than cores by default: a third on 2 cores adds an import of MXNet, no throughput
    assert [len(local_slots(parse_devices("cpu"), None, cores=n)) for n in (1, 2, 3, 64)] == [1, 2, 3, 3]
    assert len(local_slots(parse_devices("cpu"), None)) == cpu_at_once()  # this machine's cores
    assert len(local_slots(parse_devices("cpu"), at_once=3, cores=2)) == 3  # as many as asked for
    assert _worker_env(Slot("lrf-cpu0", "cpu", "cpu"), 1, cores=2) == {}  # alone: MXNet's default
    gpus = local_slots(parse_devices("gpu:1,gpu:3,gpu:4"), at_once=None)
    assert [(s.worker, s.device, s.label) for s in gpus] == [
        ("lrf-gpu1", "gpu:0", "gpu:1"), ("lrf-gpu3", "gpu:0", "gpu:3"), ("lrf-gpu4", "gpu:0", "gpu:4")]
    assert [_worker_env(s, 3, None) for s in gpus] == [{"CUDA_VISIBLE_DEVICES": i} for i in ("1", "3", "4")]
    assert len(local_slots(parse_devices("gpu:1,gpu:3,gpu:4"), at_once=2)) == 2  # at_once caps the devices used


@pytest.mark.parametrize("address", ["localhost:8786", "http://x:1", "tcp://", 8786])
def test_a_cluster_is_a_scheduler_address(address):
    with pytest.raises(ValueError, match="cluster must be a Dask scheduler address"):
        Execution(cluster=address)


def test_gpu_numbers_count_the_gpus_this_process_sees(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # a deployment's, say
    slots = local_slots(parse_devices("gpu:0,gpu:1"), at_once=None)
    assert [_worker_env(s, 2, None) for s in slots] == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
