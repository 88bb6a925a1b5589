"""The artifacts of one finder run, written into its run folder.

Every file is written atomically; ``summary.json`` comes last, so a run folder
with a summary is complete and one without is not (a reader never mistakes a
half-written run for a finished one).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from lrf import _io
from lrf.candidates import MEASURE_LABELS, CandidateResult, Selection, final_loss_table, recommend
from lrf.config import REFERENCE_MULTIPLIERS, CandidatePlan
from lrf.result import SweepResult
from lrf.rules import cyclical_range
from lrf.run import last_rung
from lrf.runs import COMPLETE_MARKER

SUMMARY_FORMAT = "lrf-run-summary"
TABLE_COLUMNS = ("rank", "lr", "multiplier", "iterations", "final_loss", "mean_last_k", "holdout_loss",
                 "holdout_accuracy", "pick", "recommended", "ran_on")


def candidate_losses_csv(candidates: Sequence[CandidateResult]) -> str:
    """iteration x candidate: one column ``lr=RATE`` per candidate; empty after a divergence."""
    ordered = sorted(candidates, key=lambda c: c.lr)
    lines = [",".join(["iteration", *(f"lr={c.lr:.6g}" for c in ordered)])]
    longest = max((len(c.losses) for c in ordered), default=0)
    for i in range(longest):
        cells = [repr(c.losses[i]) if i < len(c.losses) else "" for c in ordered]
        lines.append(",".join([str(i + 1), *cells]))
    return "\n".join(lines) + "\n"


def write_report(
    run_dir: str | os.PathLike,
    *,
    setup: dict[str, Any],
    init_params: str | os.PathLike | None = None,
    results: SweepResult | Sequence[SweepResult],
    selection: Selection,
    plan: CandidatePlan,
    execution: dict[str, Any] | None = None,
    rungs: Sequence[Sequence[CandidateResult]],
    reused: Sequence[str] = (),
) -> dict[str, Any]:
    """Write every artifact of the run into ``run_dir``; return the summary (also in summary.json,
    where ``run_dir`` is the folder's name, relative to the output root; returned, as given).

    ``results`` are the sweep, or the sweeps on different batch orders (``selection`` took
    the median pick). ``rungs`` holds, per rung, the results of the candidates that trained
    in it (each up to the rung's end); the multiples plan has one. The recommendation comes
    from the last.

    Files: init.params (a copy of ``init_params``), sweep.csv and sweep.png (the sweep the
    pick came from; pick and candidates marked), sweep-N.csv (the other sweeps, if several),
    candidate_losses.csv, candidates.png, final_losses.csv,
    final_losses.md (a table per rung when there are several), summary.json (last).
    ``reused`` names the jobs whose results came from the cache (finished by an earlier run
    with the same inputs); the summary lists them.
    """
    from lrf.plot import plot_candidates, plot_sweep

    run_dir = Path(run_dir)
    files = {"sweep_csv": "sweep.csv", "sweep_plot": "sweep.png"}
    if init_params is not None:
        files["init_params"] = "init" + (Path(init_params).suffix or ".params")  # the engine's kind of file
        _io.copy_file(init_params, run_dir / files["init_params"])
    results = [results] if isinstance(results, SweepResult) else list(results)
    chosen = next((i for i, lr in enumerate(selection.picks) if lr == selection.pick_lr), 0)
    result = results[chosen]
    result.save(run_dir / files["sweep_csv"])
    for number, other in enumerate(results):
        if number != chosen:
            files[f"sweep_{number}_csv"] = f"sweep-{number}.csv"
            other.save(run_dir / files[f"sweep_{number}_csv"])
    others = [c for c in selection.candidates if selection.pick_lr is None or not math.isclose(c, selection.pick_lr)]
    plot_sweep(result, [selection.pick], candidates=others, path=run_dir / files["sweep_plot"])

    candidates = latest_results(rungs)
    recommendation = recommend(selection, last_rung(rungs))
    rows = final_loss_table(selection, candidates, recommendation)
    if candidates:
        files.update(candidate_losses="candidate_losses.csv", candidates_plot="candidates.png",
                     final_losses_csv="final_losses.csv", final_losses_md="final_losses.md")
        _io.write_text(run_dir / files["candidate_losses"], candidate_losses_csv(candidates))
        plot_candidates(candidates, pick_lr=selection.pick_lr, recommended_lr=recommendation.lr,
                        path=run_dir / files["candidates_plot"])
        _io.write_text(run_dir / files["final_losses_csv"], table_csv(rows))
        _io.write_text(run_dir / files["final_losses_md"], rungs_markdown(selection, rungs, plan, recommendation))

    summary = {
        "format": SUMMARY_FORMAT,
        "version": 1,
        "checked": True,  # the pick checked by training (lrf find without --check writes the sweep's part)
        # the folder's name, i.e. relative to the output root: a run folder can be moved or shared
        # (every file below is named relative to the folder itself)
        "run_dir": run_dir.name,
        "setup": setup,
        "sweep": {"config": result.config.to_dict(), "iterations": len(result), "stop_reason": result.stop_reason.value},
        "sweeps": {"count": len(results), "picks": list(selection.picks), "spread": selection.spread,
                   "uncertain": selection.uncertain},
        "plan": plan.to_dict(),
        "execution": execution or {},
        "reused": list(reused),
        "recommended_lr": recommendation.lr,
        "recommendation": recommendation.to_dict(),
        "rule": selection.rule,
        "pick_lr": selection.pick_lr,
        "pick": selection.pick.to_dict(),
        "cyclical_range": cyclical_range(result, selection.rule).to_dict(),
        "candidates": list(selection.candidates),
        "final_losses": rows,
        "rungs": [{"end": rung[0].iterations, "rates": [c.lr for c in rung]} for rung in rungs if rung],
        "compute": compute(results, rungs, plan),
        "files": files,
    }
    _io.write_text(run_dir / COMPLETE_MARKER, _io.to_json(summary))
    return {**summary, "run_dir": str(run_dir)}  # where it is, for this process


def optimizer_text(setup) -> str:
    """The optimizer a run trained with, for people: ``sgd (momentum=0.9, wd=0.0005)``."""
    params = setup.optimizer_params or {}
    return setup.optimizer + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def latest_results(rungs: Sequence[Sequence[CandidateResult]]) -> list[CandidateResult]:
    """Each candidate's result at the last rung it trained in, in first-rung order."""
    latest: dict[float, CandidateResult] = {}
    for rung in rungs:
        latest.update((c.lr, c) for c in rung)
    return list(latest.values())


def compute(results: Sequence[SweepResult], rungs: Sequence[Sequence[CandidateResult]], plan: CandidatePlan) -> dict:
    """Training iterations the run spent: the sweeps', the candidates' (every rung's), and
    the candidates' as a fraction of the reference check's (3 x ``iterations``)."""
    spent = sum(len(c.losses) for c in latest_results(rungs))
    reference = len(REFERENCE_MULTIPLIERS) * plan.iterations
    return {"sweep_iterations": sum(map(len, results)), "candidate_iterations": spent,
            "reference_check_iterations": reference, "of_reference_check": round(spent / reference, 4)}


def rungs_markdown(selection: Selection, rungs: Sequence[Sequence[CandidateResult]], plan: CandidatePlan,
                   recommendation) -> str:
    """The final-loss table, and before it one table per rung when the plan has several."""
    parts = []
    if len(rungs) > 1:
        for number, rung in enumerate(rungs, start=1):
            rows = final_loss_table(selection, rung, recommendation)
            parts.append(f"### Rung {number}: {len(rung)} candidates to iteration {rung[0].iterations}\n\n"
                         + table_markdown(rows, plan.last_k, recommendation.measure))
        parts.append("### All candidates, where they stopped\n")
    parts.append(table_markdown(final_loss_table(selection, latest_results(rungs), recommendation), plan.last_k,
                                recommendation.measure))
    return "\n".join(parts)


def table_markdown(rows: Sequence[dict], k: int, measure: str | None = None) -> str:
    """The final-loss table as GitHub Markdown, ranked by ``measure`` (named under it)."""
    header = f"| rank | lr | x pick | iterations | final loss | mean last {k} | held-out loss | held-out accuracy | | ran on |"
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|:--|:--|"]
    for r in rows:
        marks = ["**recommended**" if r["recommended"] else "", "rule's pick" if r["pick"] else ""]
        cells = [
            str(r["rank"]), f"{r['lr']:.4g}", _fmt(r["multiplier"], "{:.3g}"), str(r["iterations"]),
            _fmt(r["final_loss"]),
            _fmt(r["mean_last_k"]), _fmt(r["holdout_loss"]), _fmt(r["holdout_accuracy"], "{:.2%}"),
            ", ".join(m for m in marks if m), r.get("ran_on") or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if measure is not None:
        lines.append(f"\nRanked by {MEASURE_LABELS[measure].replace(' k ', f' {k} ')}.")
    return "\n".join(lines) + "\n"


def formatted_rows(rows: Sequence[dict]) -> list[dict]:
    """The final-loss rows with their numbers as the Markdown table shows them (for a table
    a person reads, e.g. Prefect's table artifact): "diverged" instead of a blank."""
    patterns = {"lr": "{:.4g}", "multiplier": "{:.3g}", "holdout_accuracy": "{:.2%}"}
    out = []
    for r in rows:
        row = {k: (_fmt(v, patterns.get(k, "{:.4f}")) if isinstance(v, float) or v is None else v)
               for k, v in r.items() if k not in ("pick", "recommended")}
        row["note"] = ", ".join(m for m, on in (("recommended", r["recommended"]), ("rule's pick", r["pick"])) if on)
        out.append(row)
    return out


def inline_png(path: str | os.PathLike, title: str) -> str:
    """A Markdown image with the PNG inline (a data: URI), so it shows in the Prefect UI
    without access to the worker's disk."""
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"### {title}\n\n![{title}](data:image/png;base64,{data})\n"


def table_csv(rows: Sequence[dict]) -> str:
    lines = [",".join(TABLE_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in TABLE_COLUMNS))
    return "\n".join(lines) + "\n"


def _fmt(value, pattern: str = "{:.4f}") -> str:
    if value is None:  # not "-": Prefect's table artifact renders each cell as Markdown, "-" as a list bullet
        return "n/a"
    return "diverged" if isinstance(value, float) and math.isnan(value) else pattern.format(value)
