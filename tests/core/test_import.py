import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_lrf_leaves_frameworks_out():
    script = (
        "import sys, lrf\n"
        "heavy = [m for m in ('mxnet', 'prefect', 'matplotlib', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == ""


def test_importing_the_flow_the_tasks_and_the_clis_leaves_mxnet_out():
    # the Prefect process orchestrates; MXNet belongs to the jobs (lrf/gluon/jobs.py)
    script = (
        "import sys\n"
        "import flows.lr_finder, flows.main, lrf.cli, lrf.engine, lrf.gluon.engine\n"
        "import tasks.dataset, tasks.inputs, tasks.model, tasks.report, tasks.run_folder, tasks.sweep, tasks.train\n"
        "print(','.join(m for m in ('mxnet', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == ""
