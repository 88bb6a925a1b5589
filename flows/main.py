"""``lrf-flow``: the main job. Runs the lr-finder flow with Prefect's embedded local API.

No server to start: with no ``PREFECT_API_URL`` set, Prefect starts a temporary
local one for the run. Its start-up takes 10-20 s on 2 cores, close to Prefect's
default 20 s limit, hence the longer limit set here (and analytics off, which
also avoids a harmless "database is locked" error on a fresh database).
"""

from __future__ import annotations

import argparse
import os
import sys

from lrf.config import DATA_FORMS, CandidatePlan, Setup
from lrf.execution import Execution
from lrf.runs import DEFAULT_OUTPUT_ROOT

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrf-flow", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run the lr-finder flow: sweep, pick a rate, train the candidates, write the artifacts.",
    )
    parser.add_argument("--data", default=Setup.data, help=DATA_FORMS)
    parser.add_argument("--model", default=Setup.model, help="small-cnn or a Gluon model-zoo name (default by data)")
    parser.add_argument("--device", default=Setup.device, help="cpu, gpu or gpu:N")
    parser.add_argument("--batch-size", type=int, default=Setup.batch_size)
    parser.add_argument("--rule", default=CandidatePlan.rule, help="suggestion rule")
    parser.add_argument("--iterations", type=int, default=CandidatePlan.iterations,
                        help="training iterations per candidate")
    parser.add_argument("--at-once", type=int, default=Execution.at_once, help="candidates trained at the same time")
    parser.add_argument("--output-root", default=DEFAULT_OUTPUT_ROOT, help="each run gets a new folder under it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    params = {k: v for k, v in vars(args).items()}
    _check(build_parser(), params)

    from flows.lr_finder import lr_finder

    summary = lr_finder(**params)
    print(f"run folder: {summary['run_dir']}")
    recommended = summary["recommended_lr"]
    print("recommended learning rate: " + (f"{recommended:.4g}" if recommended is not None else "none"))
    print(f"  evidence: {summary['recommendation']['evidence']}")
    pick = summary["rule_pick"]
    print(f"  the {summary['rule']} rule's pick: " + (f"{pick:.4g}" if pick is not None else "none"))
    for name, file in summary["files"].items():
        print(f"  {name}: {summary['run_dir']}/{file}")
    return 0


def _check(parser: argparse.ArgumentParser, params: dict) -> None:
    """The flow validates too; checking here first gives exit status 2 without starting Prefect."""
    from lrf.gluon.preflight import prepare_setup

    try:
        prepare_setup(Setup(data=params["data"], model=params["model"], device=params["device"],
                            batch_size=params["batch_size"]))
        CandidatePlan(rule=params["rule"], iterations=params["iterations"])
        Execution(at_once=params["at_once"])
    except (ValueError, TypeError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())
