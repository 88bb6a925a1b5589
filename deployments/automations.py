"""``lrf-automations``: the server-side automations lrf's deployments rely on.

A flow run whose machine dies (worker and flow process killed together) would stay
"Running" for ever: nothing is left to report its end. Prefect's flow runs emit
heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set to 30 s in the worker's
start command of the README); this automation, from Prefect's guide "How to detect
and respond to zombie flows", marks a run Crashed when no heartbeat (nor an end)
follows the last one within ``--window`` seconds (``WINDOW`` by default).

With ``--notify BLOCK`` (a notification block's slug, ``TYPE/NAME``, e.g.
``custom-webhook/lrf-alerts`` or ``slack-webhook/ml-team``), a second automation sends
a notification through that block whenever a run emits ``lrf.recommendation.changed``
(its recommended rate moved, or its data changed, since the last run of its set-up: see
``lrf.history``). Idempotent: running it again updates each automation in place. Needs
``PREFECT_API_URL`` (a real server).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

NAME = "lrf: crash zombie flow runs"
NOTIFY_NAME = "lrf: notify when the recommendation changes"
CHANGED_EVENT = "lrf.recommendation.changed"  # emitted by tasks/report.py
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


def notify_automation(block_document_id):
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=NOTIFY_NAME,
        description="Sends a notification when a run's recommended learning rate moved or its data changed.",
        trigger=EventTrigger(expect={CHANGED_EVENT}, match=ResourceSpecification({"prefect.resource.id": "lrf.setup.*"}),
                             posture=Posture.Reactive, threshold=1, within=timedelta(0)),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject="lrf: the recommended learning rate changed",
            body="lrf: the recommendation for {{ event.resource.get('prefect.resource.name') }} changed: "
                 "{{ event.payload.reason }} (was {{ event.payload.previous_lr }}, now {{ event.payload.lr }}); "
                 "run folder {{ event.payload.run_dir }}",
        )],
    )


def notification_block_id(slug: str):
    """The id of the notification block ``TYPE/NAME``; ValueError naming it if there is none."""
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import NotificationBlock

    try:
        block = Block.load(slug)
    except (ValueError, KeyError) as error:
        raise ValueError(f"--notify {slug!r}: no such block on the server ({error})") from None
    if not isinstance(block, NotificationBlock):
        raise ValueError(f"--notify {slug!r}: a {type(block).__name__}, not a notification block")
    return block._block_document_id


def _ensure(wanted) -> str:
    from prefect.automations import Automation

    try:
        existing = Automation.read(name=wanted.name)
    except ValueError:  # none of that name yet
        existing = None
    if existing is None:
        return str(wanted.create().id)
    wanted.id = existing.id
    wanted.update()
    return str(existing.id)


def ensure_automations(window: timedelta = WINDOW, notify: str | None = None) -> dict[str, str]:
    """Create each automation, or update the one of the same name; return their ids by name.
    ``notify``: a notification block's slug, checked before anything is created."""
    block_id = notification_block_id(notify) if notify else None
    ids = {NAME: _ensure(zombie_automation(window))}
    if block_id is not None:
        ids[NOTIFY_NAME] = _ensure(notify_automation(block_id))
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lrf-automations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=WINDOW.total_seconds(), metavar="SECONDS",
                        help="mark a run Crashed when no heartbeat follows its last one within this many "
                             f"seconds (default: %(default)g; more than {SHORTEST_HEARTBEAT.seconds} s, "
                             "Prefect's shortest heartbeat period)")
    parser.add_argument("--notify", metavar="BLOCK", default=None,
                        help="also notify through this notification block (TYPE/NAME, e.g. custom-webhook/lrf-alerts) "
                             f"whenever a run emits {CHANGED_EVENT}")
    args = parser.parse_args(argv)
    if args.notify is not None and (args.notify.count("/") != 1 or not all(args.notify.split("/"))):
        parser.error(f"--notify must name a block as TYPE/NAME (e.g. custom-webhook/lrf-alerts): got {args.notify!r}")
    if not SHORTEST_HEARTBEAT.total_seconds() < args.window <= LONGEST_WINDOW.total_seconds():  # nan too
        parser.error(f"--window must be more than {SHORTEST_HEARTBEAT.seconds} seconds (Prefect's shortest "
                     "heartbeat period; a shorter window marks healthy runs Crashed) and at most "
                     f"{LONGEST_WINDOW.total_seconds():g} (a day): got {args.window:g}")
    if not os.environ.get("PREFECT_API_URL"):
        parser.error("PREFECT_API_URL is not set: point it at the server the automation belongs to "
                     "(without it Prefect would start a throwaway server of its own)")
    try:
        ids = ensure_automations(timedelta(seconds=args.window), args.notify)
    except ValueError as error:
        parser.error(str(error))
    for name, id_ in ids.items():
        print(f"automation {name!r}: {id_}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
