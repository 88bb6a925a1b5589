"""The sweep plot (SPEC §6) with suggestions marked; needs no display.

matplotlib is imported here only, so ``import lrf`` stays light.

>>> plot_sweep(result, [suggest(result)], path="sweep.png")   # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from lrf import _io
from lrf.result import SweepResult
from lrf.rules import Suggestion

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MARKER_COLOURS = ("tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink")


def preload() -> None:
    """Import what plotting uses (about 1 s), ahead of the first plot: for a caller that has
    time to spare meanwhile (the CLI, while Prefect's temporary server starts)."""
    import matplotlib.backends.backend_agg  # noqa: F401 (Figure.savefig's canvas)
    from matplotlib.figure import Figure  # noqa: F401


def plot_sweep(
    result: SweepResult,
    suggestions: Iterable[Suggestion] = (),
    *,
    ax: "Axes | None" = None,
    path: str | os.PathLike | None = None,
    candidates: Sequence[float] = (),
    title: str | None = None,
) -> "Axes":
    """Loss against learning rate as points on log-log axes, per SPEC §6.

    Args:
        result: the sweep to draw.
        suggestions: each usable one is marked with a vertical line and its rate.
        ax: draw on these axes (e.g. a subplot of the caller's figure); default a new figure.
        path: if given, write the figure there as PNG, atomically.
        candidates: further rates to mark with dotted lines (e.g. the checked candidates).
        title: figure title (default: the stop reason).

    Returns:
        the axes drawn on.
    """
    from matplotlib.figure import Figure  # Figure without pyplot: no display, no global state

    if ax is None:
        ax = Figure(figsize=(7, 4.5), dpi=100).add_subplot()
    points = [(lr, loss) for lr, loss in zip(result.lrs, result.losses) if math.isfinite(loss) and loss > 0]
    if points:
        lrs, losses = zip(*points)
        ax.plot(lrs, losses, ".", markersize=4, color="tab:blue", label="loss")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if lrs[-1] > lrs[0]:
            ax.set_xlim(lrs[0], lrs[-1])
        ax.set_ylim(0.8 * min(losses), max(4 * losses[0], 1.01 * min(losses)))
    smoothed = [(lr, s) for lr, s in zip(result.lrs, result.smoothed) if math.isfinite(s) and s > 0]
    if smoothed:
        ax.plot(*zip(*smoothed), "-", linewidth=1, color="tab:gray", alpha=0.7, label="smoothed loss")
    for colour, suggestion in zip(MARKER_COLOURS, (s for s in suggestions if s.ok)):
        ax.axvline(suggestion.lr, color=colour, linewidth=1.2, label=f"{suggestion.rule}: {suggestion.lr:.3g}")
    for rate in candidates:
        ax.axvline(rate, color="black", linestyle=":", linewidth=1, label=f"candidate {rate:.3g}")
    ax.set_xlabel("Learning Rate")
    ax.set_ylabel("Loss")
    ax.set_title(title or f"LR range test: {len(result)} iterations, stopped: {result.stop_reason.value}")
    _legend(ax, "upper left")
    if path is not None:
        save_figure(ax.figure, path)
    return ax


def _legend(ax, loc: str) -> None:
    if ax.get_legend_handles_labels()[0]:  # nothing finite to draw, nothing to label: no empty legend
        ax.legend(loc=loc, fontsize="small")


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` to ``path`` as PNG atomically (a reader never sees half a PNG)."""
    with _io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


def plot_candidates(candidates: Sequence, *, pick_lr: float | None = None, recommended_lr: float | None = None,
                    ax: "Axes | None" = None, path: str | os.PathLike | None = None) -> "Axes":
    """Training loss per iteration of each candidate (``CandidateResult``-like), log loss axis;
    a moving average of 20 iterations drawn over the raw losses keeps the curves readable."""
    import numpy as np
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(7, 4.5), dpi=100).add_subplot()
    firsts, lowest = [], math.inf
    longest = max((c.iterations for c in candidates), default=0)
    for colour, c in zip(MARKER_COLOURS + ("tab:blue", "tab:olive", "tab:cyan"), sorted(candidates, key=lambda c: c.lr)):
        losses = np.asarray(c.losses, dtype=float)
        steps = np.arange(1, len(losses) + 1)
        window = min(20, len(losses))
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        label = f"lr {c.lr:.3g}" + (" (pick)" if pick_lr is not None and math.isclose(c.lr, pick_lr) else "")
        label += " (recommended)" if recommended_lr is not None and math.isclose(c.lr, recommended_lr) else ""
        label += " (diverged)" if c.diverged else ""
        stopped = not c.diverged and c.iterations < longest  # a refine rung left it behind
        label += f" (stopped at {c.iterations})" if stopped else ""
        ax.plot(steps, losses, color=colour, alpha=0.25 if len(losses) > window else 1.0, linewidth=0.8,
                label=label if c.diverged else None)
        if not c.diverged:
            ax.plot(steps[window - 1:], smooth, color=colour, linewidth=1.6, label=label)
            if stopped:
                ax.plot(steps[-1], smooth[-1], marker="x", color=colour, markersize=8)
        finite = losses[np.isfinite(losses) & (losses > 0)]
        if finite.size:
            firsts.append(finite[0])
            lowest = min(lowest, finite.min())
    ax.set_yscale("log")
    if firsts:  # as the sweep plot: a diverged candidate must not squash the others
        ax.set_ylim(0.8 * lowest, 4 * max(firsts))
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Loss")
    ax.set_title("Candidate trainings from the same initial weights and batches")
    _legend(ax, "upper right")
    if path is not None:
        save_figure(ax.figure, path)
    return ax


def plot_history(rows: Sequence[dict], path: str | os.PathLike | None = None, ax: "Axes | None" = None) -> "Axes":
    """The drift plot of an output root's history (:mod:`lrf.history` rows, oldest first): the
    recommended rate and the sweep's pick per run on a log axis, with a dashed line where the
    set-up or the data changed from the run before."""
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(7, 4.5), dpi=100).add_subplot()
    runs = list(range(1, len(rows) + 1))
    for name, label, style in (("recommended_lr", "recommended", "o-"), ("pick_lr", "sweep's pick", "x--")):
        points = [(run, row[name]) for run, row in zip(runs, rows) if row[name] is not None and row[name] > 0]
        if points:
            ax.plot(*zip(*points), style, label=label)
    for run, (before, row) in zip(runs[1:], zip(rows, rows[1:])):
        what = ("set-up" if before["setup_key"] != row["setup_key"]
                else "data" if before["data_fingerprint"] != row["data_fingerprint"] else None)
        if what:
            ax.axvline(run - 0.5, color="tab:grey", linestyle=":", linewidth=1)
            ax.annotate(f"{what} changed", (run - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize="small", color="tab:grey")
    if any(row[name] for row in rows for name in ("recommended_lr", "pick_lr")):
        ax.set_yscale("log")
    ax.set_xticks(runs, [row["time"][:16].replace("T", "\n") for row in rows], fontsize="x-small")
    ax.set_xlim(0.5, len(rows) + 0.5)
    ax.set_xlabel("Run")
    ax.set_ylabel("Learning rate")
    ax.set_title("Recommended learning rate over the runs of this output root")
    _legend(ax, "best")
    if path is not None:
        save_figure(ax.figure, path)
    return ax
