"""Run the benchmarks: ``uv run --locked python -m benchmarks [--quick] [--only NAME[,NAME]]``.

Each benchmark runs in a process of its own (``python -m benchmarks.NAME``), so
none inherits another's MXNet threads, loader workers or Prefect server. Full
results go to ``benchmarks/results/``, ``--quick`` ones to
``benchmarks/results/quick/``; afterwards ``README.md`` there is rebuilt from
every ``NAME.json`` in the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks._common import (NAMES, QUICK_RESULTS, REPO, RESULTS, Report, command, figures_markdown, load_average,
                                log, machine, machine_markdown, write_report)
from lrf import _io

ABOUT = {
    "sweep_overhead": "1. Sweep overhead",
    "snapshot": "2. Snapshot and restore",
    "orchestration": "3. Orchestration overhead",
    "parallel": "4. Parallel candidates",
    "data_pipeline": "5. Data pipeline",
    "regret": "6. Suggestion quality (regret)",
    "answer": "7. The recommendation against a grid",
    "spread": "8. How sure is a pick (spread over batch orders)",
    "scale_out": "9. Scale out (jobs on Dask workers)",
    "engines": "10. The two engines side by side",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke sizes for CI (digits only, tiny budgets; about 2-3 minutes)")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(NAMES)}")
    parser.add_argument("--readme", action="store_true",
                        help="run nothing: rebuild README.md from the result files already there")
    args = parser.parse_args(argv)
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in NAMES]
        if unknown or not chosen:
            parser.error(f"argument --only: unknown benchmark {', '.join(unknown) or repr(args.only)}; "
                         f"choose from {', '.join(NAMES)}")
        args.names = [n for n in NAMES if n in chosen]
    else:
        args.names = list(NAMES)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = QUICK_RESULTS if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    if args.readme:
        write_readme(out, args.quick, {}, None, None)
        return 0
    started = time.perf_counter()
    outcome = {}
    for name in args.names:
        log(f"=== {name} ===")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", f"benchmarks.{name}", "--out", str(out)] + (["--quick"] if args.quick else [])
        status = subprocess.run(cmd, cwd=REPO, env=dict(os.environ)).returncode
        outcome[name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1)}
        log(f"=== {name}: {'ok' if status == 0 else f'FAILED (exit {status})'} in {outcome[name]['seconds']:.0f} s ===")
    total = time.perf_counter() - started
    write_readme(out, args.quick, outcome, total, args.only)
    log(f"suite took {total:.0f} s; results in {out}")
    failed = [n for n, o in outcome.items() if o["status"] != 0]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def write_readme(out: Path, quick: bool, outcome: dict, total: float | None, only: str | None) -> None:
    """Rebuild ``README.md`` from every result file in ``out`` (also ones from earlier runs)."""
    reports = {}
    for name in NAMES:
        path = out / f"{name}.json"
        if path.is_file():
            reports[name] = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
            write_report(reports[name], out)  # NAME.md in today's layout, from the same numbers
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = "quick (smoke) sizes" if quick else "full sizes"
    lines = [
        f"# lrf benchmarks: results ({kind})",
        "",
        f"Command: `{command(quick)}` (one benchmark: `{command(quick, 'NAME')}`, or "
        f"`uv run --locked python -m benchmarks.NAME{' --quick' if quick else ''}`).",
        "",
        f"Written {now}" + (f"; this invocation (`{command(quick, only)}`) took {total / 60:.1f} min "
                            f"(load average at the end {load_average()})" if total is not None else "")
        + f". The benchmarks' own run times add up to {sum(r.seconds for r in reports.values()) / 60:.1f} min "
          "(each section gives its own date and time).",
        "",
        f"Machine: {machine_markdown(machine())} (lrf's commit when this file was written; each section names "
        "the commit it ran on).",
        "",
        "The machine is shared and noisy: every figure is a ratio of two things measured in the same run, "
        "interleaved (variants take turns, the order rotating from round to round), given as median [min–max] over the "
        "rounds. No figure is an absolute time.",
        "",
    ]
    if quick:
        lines += ["These are smoke sizes (digits only, tiny budgets): they show the suite runs and the figures "
                  "are in range, not the project's measurements; those are in `benchmarks/results/README.md`.", ""]
    lines += ["## Summary", "", "| benchmark | took | figures met | figures missed |", "|:---|---:|---:|---:|"]
    for name, report in reports.items():
        met = sum(1 for f in report.figures if f.met is True)
        missed = sum(1 for f in report.figures if f.met is False)
        lines.append(f"| [{ABOUT[name]}](#{_anchor(report.title)}) | {report.seconds / 60:.1f} min | {met} | {missed} |")
    for name, o in outcome.items():
        if o["status"] != 0:
            lines.append(f"| {ABOUT[name]} | FAILED this time (exit {o['status']}); "
                         f"{'the section below is from an earlier run' if name in reports else 'no result'} | | |")
    lines += ["", "### Every figure against its goal", ""]
    all_figures = []
    for name, report in reports.items():
        for f in report.figures:
            if f.goal:
                all_figures.append(f)
    lines += [figures_markdown(all_figures), ""]
    for name, report in reports.items():
        lines += [report.markdown(level=2), ""]
    _io.write_text(out / "README.md", "\n".join(lines))


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


if __name__ == "__main__":
    sys.exit(main())
