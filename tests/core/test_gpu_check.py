"""benchmarks/gpu_check.py runs on a GPU machine that has torch but no MXNet, Prefect or Dask:
importing it pulls none of them in, and without CUDA it refuses in one line (exit status 2)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABSENT_THERE = ("mxnet", "prefect", "distributed", "dask")


def _imported(statement: str) -> list[str]:
    script = (f"import sys\n{statement}\n"
              f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(ABSENT_THERE)!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return [m for m in done.stdout.strip().split(",") if m]


def test_importing_gpu_check_leaves_mxnet_prefect_and_dask_out():
    assert _imported("import benchmarks.gpu_check") == []


@pytest.mark.slow  # imports torch and torchvision: seconds
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the torch extra is not installed")
def test_what_its_run_imports_leaves_them_out_too():
    # the child's imports: torch, torchvision, lrf's core and lrf.pytorch (no sklearn either: no digits there)
    assert _imported("import benchmarks.gpu_check as g; g.runtime_imports()\n"
                     "assert 'sklearn' not in sys.modules, 'sklearn'") == []


def test_without_cuda_a_gpu_device_is_refused_in_one_line():
    # no GPU visible to CUDA, whatever this machine has: the refusal, never the whole check
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "gpu:0"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: ") and "--device cpu" in lines[0], done.stderr
