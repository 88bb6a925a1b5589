"""``lrf-automations``: the server-side automations lrf's deployments rely on.

A flow run whose machine dies (worker and flow process killed together) would stay
"Running" for ever: nothing is left to report its end. Prefect's flow runs emit
heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set to 30 s in the worker's
start command of the README); this automation, from Prefect's guide "How to detect
and respond to zombie flows", marks a run Crashed when no heartbeat (nor an end)
follows the last one within ``--window`` seconds (``WINDOW`` by default). Idempotent:
running it again updates the automation in place. Needs ``PREFECT_API_URL`` (a real
server).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

NAME = "lrf: crash zombie flow runs"
WINDOW = timedelta(seconds=90)  # three missed heartbeats at 30 s
#: Prefect's shortest heartbeat period: a window no longer than it would crash healthy runs
SHORTEST_HEARTBEAT = timedelta(seconds=30)
LONGEST_WINDOW = timedelta(days=1)


def zombie_automation(window: timedelta = WINDOW):
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=NAME,
        description="Marks a flow run Crashed when its heartbeats stop (its machine died).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="Flow run marked as crashed: its heartbeats stopped")],
    )


def ensure_automations(window: timedelta = WINDOW) -> str:
    """Create the automation, or update the one of the same name; return its id."""
    from prefect.automations import Automation

    wanted = zombie_automation(window)
    try:
        existing = Automation.read(name=NAME)
    except ValueError:  # none of that name yet
        existing = None
    if existing is None:
        return str(wanted.create().id)
    wanted.id = existing.id
    wanted.update()
    return str(existing.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lrf-automations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=WINDOW.total_seconds(), metavar="SECONDS",
                        help="mark a run Crashed when no heartbeat follows its last one within this many "
                             f"seconds (default: %(default)g; more than {SHORTEST_HEARTBEAT.seconds} s, "
                             "Prefect's shortest heartbeat period)")
    args = parser.parse_args(argv)
    if not SHORTEST_HEARTBEAT.total_seconds() < args.window <= LONGEST_WINDOW.total_seconds():  # nan too
        parser.error(f"--window must be more than {SHORTEST_HEARTBEAT.seconds} seconds (Prefect's shortest "
                     "heartbeat period; a shorter window marks healthy runs Crashed) and at most "
                     f"{LONGEST_WINDOW.total_seconds():g} (a day): got {args.window:g}")
    if not os.environ.get("PREFECT_API_URL"):
        parser.error("PREFECT_API_URL is not set: point it at the server the automation belongs to "
                     "(without it Prefect would start a throwaway server of its own)")
    print(f"automation {NAME!r}: {ensure_automations(timedelta(seconds=args.window))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
