"""PyTorch state-dict files read without PyTorch (lrf.pytorch.params_file), checked against torch itself."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from lrf.pytorch.params_file import check_fits, check_init_params, read_layout

ROOT = Path(__file__).resolve().parents[2]


def _small(classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, classes))


def _torch_layout(path) -> dict:
    return {name: (tuple(t.shape), str(t.dtype).removeprefix("torch."))
            for name, t in torch.load(path, weights_only=True).items()}


def _torch_like_zip(path: Path, data_pkl: bytes | None, folder: str = "archive") -> Path:
    """A zip laid out as torch.save lays one out, around any pickle (None: without data.pkl)."""
    with zipfile.ZipFile(path, "w") as archive:
        if data_pkl is not None:
            archive.writestr(f"{folder}/data.pkl", data_pkl)
        archive.writestr(f"{folder}/byteorder", "little")
        archive.writestr(f"{folder}/version", "3\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """State-dict files as torch.save writes them, of a small network, ResNet-18 and other types."""
    tmp = tmp_path_factory.mktemp("state_dicts")
    paths = {name: tmp / f"{name}.pt" for name in
             ("small", "small-seed-7", "small-3-classes", "small-half", "parameters", "resnet18", "resnet18-10",
              "dtypes")}
    torch.save(_small().state_dict(), paths["small"])
    torch.save(_small(seed=7).state_dict(), paths["small-seed-7"])
    torch.save(_small(classes=3).state_dict(), paths["small-3-classes"])
    torch.save(_small().half().state_dict(), paths["small-half"])
    torch.save(dict(_small().named_parameters()), paths["parameters"])  # nn.Parameter objects
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), paths["resnet18"])
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), paths["resnet18-10"])
    dtypes = [torch.float16, torch.bfloat16, torch.float64, torch.complex64, torch.int8, torch.int16, torch.int32,
              torch.uint8, torch.bool, torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn,
              torch.float8_e5m2]  # the last five are saved the newer way: an untyped storage and a dtype
    mixed = {str(dtype): torch.zeros(2, 3, dtype=dtype) for dtype in dtypes}
    mixed |= {"scalar": torch.tensor(3), "view": torch.arange(10.0)[2:7], "transposed": torch.zeros(3, 4).t(),
              "empty": torch.zeros(0, 5)}
    torch.save(mixed, paths["dtypes"])
    return paths


@pytest.mark.parametrize("name", ["small", "small-half", "parameters", "resnet18", "dtypes"])
def test_the_layout_is_what_torch_loads(files, name):
    assert read_layout(files[name]) == _torch_layout(files[name])


def test_batch_norm_counts_its_batches_in_a_0_d_int64(files):
    layout = read_layout(files["small"])
    assert layout["1.num_batches_tracked"] == ((), "int64")
    assert layout["1.running_var"] == ((8,), "float32")


@pytest.mark.parametrize("given, fits", [("small-seed-7", True), ("small-3-classes", False), ("small-half", False),
                                         ("resnet18", False), ("parameters", False)])
def test_check_fits_says_whether_the_file_has_the_network_s_tensors(files, given, fits):
    if fits:
        check_fits(files[given], files["small"])
        _small().load_state_dict(torch.load(files[given], weights_only=True))  # as strict as torch
        return
    with pytest.raises(ValueError, match=r"init_params='.*' does not fit small \(the file holds \d+ tensors") as error:
        check_fits(files[given], files["small"], "small")
    message = str(error.value)
    if given == "small-3-classes":
        assert "4.weight is (3, 288) float32 in the file, (10, 288) float32 in small" in message
    if given == "small-half":
        assert "0.weight is (8, 1, 3, 3) float16 in the file, (8, 1, 3, 3) float32 in small" in message
    if given == "parameters":  # named_parameters() has no BatchNorm buffers
        assert "the file lacks 1.running_mean (8,) float32" in message and "1.num_batches_tracked () int64" in message


def test_check_fits_names_the_layer_that_differs_in_resnet18(files):
    check_fits(files["resnet18"], files["resnet18"])
    with pytest.raises(ValueError, match=r"fc\.weight is \(10, 512\) float32 in the file, \(1000, 512\) float32 in "
                                         r"resnet18; fc\.bias is \(10,\) float32 in the file") as error:
        check_fits(files["resnet18-10"], files["resnet18"], "resnet18")
    assert "the file holds 122 tensors, resnet18 has 122" in str(error.value)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript is deprecated, its files are still about
def test_entry_check_refuses_what_is_no_state_dict_file(files, tmp_path):
    assert check_init_params(None) is None
    assert check_init_params(str(files["small"])) == str(files["small"])
    text = tmp_path / "notes.pt"
    text.write_text("not parameters at all, but long enough to have a header")
    mxnet_style = tmp_path / "net.params"
    mxnet_style.write_bytes((0x112).to_bytes(8, "little") + bytes(8) + (0).to_bytes(8, "little") * 2)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(files["small"].read_bytes()[:3000])
    legacy = tmp_path / "legacy.pt"
    torch.save(_small().state_dict(), legacy, _use_new_zipfile_serialization=False)
    whole = tmp_path / "whole.pt"
    torch.save(_small(), whole)
    script = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(_small()), script)
    no_pickle = _torch_like_zip(tmp_path / "no-pickle.pt", None)
    a_list = _torch_like_zip(tmp_path / "list.pt", pickle.dumps([1, 2], protocol=2))
    not_tensors = _torch_like_zip(tmp_path / "numbers.pt", pickle.dumps({"weight": 1.5}, protocol=2))
    for value, message in [(str(tmp_path / "missing.pt"), "is not a file: it does not exist"),
                           (str(tmp_path), "is not a file: it is a folder"),
                           (str(text), "it is not a zip archive"),
                           (str(mxnet_style), "it is an MXNet parameter file"),
                           (str(cut), "it is not a zip archive"),
                           (str(legacy), "it is a bare pickle, as torch.save wrote before torch 1.6"),
                           (str(whole), "its data.pkl names torch.nn.modules.container.Sequential"),
                           (str(script), "it is a TorchScript archive (torch.jit.save)"),
                           (str(no_pickle), "it is a zip archive with no <folder>/data.pkl"),
                           (str(a_list), "it holds a list, not a dict of tensors"),
                           (str(not_tensors), "its entry 'weight' is a float, not a tensor"),
                           ("", "init_params=''")]:
        with pytest.raises(ValueError, match="init_params=") as error:
            check_init_params(value)
        assert message in str(error.value) and repr(value) in str(error.value)
        if value not in ("", str(tmp_path)) and "is not a file" not in message:
            assert "not a PyTorch state-dict file (saved with torch.save(model.state_dict(), path))" in str(error.value)


class _Payload:
    """What a hostile file holds: a pickle that runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_anything_else_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    hostile = _torch_like_zip(tmp_path / "hostile.pt", pickle.dumps({"weight": _Payload(marker)}, protocol=2))
    with pytest.raises(ValueError, match=r"init_params=.*hostile\.pt.* its data\.pkl names posix\.system"):
        check_init_params(str(hostile))
    assert not marker.exists()


def test_what_a_pickle_does_to_the_names_it_reads_stays_in_that_read(files, tmp_path):
    """A pickle may set attributes (BUILD) on what it names: here it tells FloatStorage it holds
    float64; the next file's float32 tensors are still float32."""
    build = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x07\x00\x00\x00float64sb0}."
    assert read_layout(_torch_like_zip(tmp_path / "build.pt", build)) == {}
    assert read_layout(files["small"]) == _torch_layout(files["small"])


def test_importing_the_reader_leaves_torch_out():
    code = "import lrf.pytorch.params_file, sys; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
