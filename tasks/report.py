from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lrf.candidates import CandidateResult, Selection
from lrf.config import CandidatePlan, Setup
from lrf.execution import Execution
from lrf.report import formatted_rows, inline_png, optimizer_text, write_report
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
        "## Files",
        "",
        *(f"- {name}: `{run_dir}/{file}`" for name, file in summary["files"].items()),
        f"- summary: `{run_dir}/summary.json`",
    ]
    create_markdown_artifact(key="lr-finder-report", markdown="\n".join(lines),
                             description="LR finder run summary with file locations")
    get_run_logger().info("artifacts written to %s; recommended lr %s: %s", run_dir, recommended,
                          recommendation["evidence"])
    return summary
