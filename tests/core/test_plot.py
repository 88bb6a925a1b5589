import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrf import find, suggest
from lrf.plot import plot_sweep
from tests.core.quadratic import QuadraticLearner

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    return find(QuadraticLearner(a=4.0, floor=1.0))


def test_writes_a_png_atomically(tmp_path, result):
    plot_sweep(result, [suggest(result)], path=tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]  # no temporary left


def test_axes_follow_the_reference_plot(result):
    ax = plot_sweep(result)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "Learning Rate" and ax.get_ylabel() == "Loss"
    assert ax.get_xlim() == pytest.approx((result.lrs[0], result.lrs[-1]))
    assert ax.get_ylim() == pytest.approx((0.8 * min(result.losses), 4 * result.losses[0]))


def test_suggestions_and_candidates_are_marked(result):
    pick = suggest(result)
    ax = plot_sweep(result, [pick], candidates=[pick.lr * 10, pick.lr / 10])
    labels = ax.get_legend_handles_labels()[1]
    assert f"reference: {pick.lr:.3g}" in labels
    assert sum(label.startswith("candidate") for label in labels) == 2


def test_draws_on_the_callers_axes(result):
    from matplotlib.figure import Figure

    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plot_sweep(result, ax=right) is right
    assert not left.lines and right.lines


def test_needs_no_display_and_no_pyplot(tmp_path):
    script = (
        "import sys; from lrf import find; from lrf.plot import plot_sweep;"
        "from tests.core.quadratic import QuadraticLearner;"
        f"plot_sweep(find(QuadraticLearner()), path={str(tmp_path / 'x.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.png").read_bytes().startswith(PNG_SIGNATURE)
