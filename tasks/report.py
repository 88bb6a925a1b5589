from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lrf.candidates import CandidateResult, Selection
from lrf.config import CandidatePlan, Setup
from lrf.execution import Execution
from lrf.report import formatted_rows, inline_png, optimizer_text, write_report
from lrf import history
from lrf.result import SweepResult


@task(name="report")
def report(run_dir: str, setup: Setup, init_params: str, results: list[SweepResult], selection: Selection,
           plan: CandidatePlan, execution: Execution, rungs: list[list[CandidateResult]],
           reused: list[str] | None = None) -> dict:
    """Write the run's artifacts and publish the final-loss table and a summary in Prefect;
    ``reused`` names the jobs read back from the cache instead of computed."""
    summary = write_report(run_dir, setup=setup.to_dict(), init_params=init_params, results=results,
                           selection=selection, plan=plan, execution=execution.__dict__, rungs=rungs,
                           reused=reused or ())
    try:
        moved, drift_plot, runs = record_history(run_dir, setup, summary)
    except OSError as error:  # the run's answer is complete and written: its history never fails it
        get_run_logger().warning("this run was not added to the history of %s: %s", Path(run_dir).parent, error)
        moved = drift_plot = runs = None
    rows = summary["final_losses"]
    recommendation = summary["recommendation"]
    if rows:
        create_table_artifact(key="lr-finder-final-losses", table=formatted_rows(rows),
                              description=f"Final losses of the candidate rates ({run_dir})")
    pick = selection.pick
    recommended = summary["recommended_lr"]
    lines = [
        f"# LR finder: {setup.subject}",
        "",
        *([f"**The recommendation changed since the last run of this set-up: {moved.reason}** "
           f"({_lr(moved.previous_lr)} in `{moved.previous_run}`, now {_lr(moved.lr)})", ""] if moved else []),
        f"**Recommended learning rate: {recommended:.4g}**" if recommended is not None
        else "**No recommended learning rate**",
        "",
        f"- evidence: {recommendation['evidence']}",
        f"- trained with: {optimizer_text(setup)}, batch size {setup.batch_size} (the sweep and every candidate)",
        f"- sweep: {summary['sweep']['iterations']} iterations, stopped: {summary['sweep']['stop_reason']}",
        f"- rule `{selection.rule}` picked: " + (f"{pick.lr:.4g} ({pick.reason})" if pick.ok else pick.reason),
        *([f"- cyclical range (Smith 2017): {bounds['base_lr']:.3g} to {bounds['max_lr']:.3g}"]
          if (bounds := summary["cyclical_range"])["base_lr"] is not None else []),
        *([f"- {len(results)} sweeps on different batch orders: picks "
           + ", ".join("-" if lr is None else f"{lr:.3g}" for lr in selection.picks)
           + (f", spread {selection.spread:.2f}x" if selection.spread else "")
           + (": **uncertain**, the candidates' range was widened by the spread" if selection.uncertain else "")]
          if len(results) > 1 else []),
        f"- candidates: {summary['compute']['candidate_iterations']} training iterations, "
        f"{summary['compute']['of_reference_check']:.0%} of the reference check's",
        *([f"- reused from the cache (finished by an earlier run with the same inputs; `recompute` "
           f"computes them again): {', '.join(reused)}"] if reused else []),
        "",
        (Path(run_dir) / summary["files"]["final_losses_md"]).read_text(encoding="utf-8") if rows else "",
        "## Plots",
        "",
        *(inline_png(Path(run_dir) / summary["files"][name], title) for name, title in
          (("sweep_plot", "Loss against learning rate"), ("candidates_plot", "Candidate trainings"))
          if name in summary["files"]),
        *([inline_png(drift_plot, "The recommendation over this output root's runs")] if drift_plot else []),
        "## Files",
        "",
        *(f"- {name}: `{run_dir}/{file}`" for name, file in summary["files"].items()),
        f"- summary: `{run_dir}/summary.json`",
    ]
    create_markdown_artifact(key="lr-finder-report", markdown="\n".join(lines),
                             description="LR finder run summary with file locations")
    get_run_logger().info("artifacts written to %s; recommended lr %s: %s", run_dir, recommended,
                          recommendation["evidence"])
    return {**summary, "history": {"file": str(Path(run_dir).parent / history.HISTORY_FILE), "runs": runs,
                                   "changed": moved.to_dict() if moved else None}}


def record_history(run_dir: str, setup: Setup, summary: dict) -> tuple[history.Change | None, Path | None, int]:
    """Append this completed run to its output root's history, publish that set-up's rows as a
    keyed table artifact (Prefect keeps every version), write the drift plot once there are
    two rows or more, and emit ``lrf.recommendation.changed`` when the recommendation moved
    or the data changed since the set-up's last run. Returns the change, the plot and how
    many runs the history holds."""
    from prefect.events import emit_event
    from prefect.runtime import deployment, flow_run

    from lrf.cache import work_fields
    from lrf.plot import plot_history

    fields = work_fields(setup)
    root = Path(run_dir).parent
    row = history.history_row(summary, fingerprint=fields.get("data_fingerprint") or fields.get("recipe_fingerprint"),
                              run_dir=Path(run_dir).name, flow_run_id=str(flow_run.id or ""),
                              flow_run_name=flow_run.name or "", deployment=deployment.name or "")
    rows, _ = history.append(root, row)
    same = [r for r in rows if r["setup_key"] == row["setup_key"]]
    create_table_artifact(key=history.artifact_key(row["setup_key"]),
                          table=[{k: r[k] for k in history.COLUMNS if k not in ("format", "row_sha256")} for r in same],
                          description=f"History of this set-up's recommendations in {root} (newest last)")
    drift_plot = None
    if len(rows) >= 2:
        drift_plot = root / history.DRIFT_PLOT
        plot_history(rows, path=drift_plot)
    moved = history.change(rows)
    if moved is not None:
        emit_event(event="lrf.recommendation.changed",
                   resource={"prefect.resource.id": f"lrf.setup.{row['setup_key']}",
                             "prefect.resource.name": setup.subject},
                   payload={**moved.to_dict(), "run_dir": str(run_dir), "output_root": str(root)})
        get_run_logger().warning("the recommendation changed since the last run of this set-up: %s (%s -> %s)",
                                 moved.reason, moved.previous_lr, moved.lr)
    return moved, drift_plot, len(rows)


def _lr(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
