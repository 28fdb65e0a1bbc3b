"""Server-side monitoring for the factory's deployments: runs whose process dies end Crashed.

A worker (or its machine) that dies mid-run stops the flow run's heartbeats; without help the
run stays Running forever. This installs Prefect's documented "zombie flow" automation on the
server: after each `prefect.flow-run.heartbeat`, some event for that flow run (another heartbeat
or a state change) must follow within `within_seconds`, else the run is set to Crashed. Workers
send a heartbeat every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds (>= 30; `make worker` sets
30), so keep `within_seconds` at a few heartbeats.

    python -m flows.monitoring [--within 90]      # once per server; `make deploy` runs it
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

AUTOMATION_NAME = "synthfactory: crash runs that stop sending heartbeats"


def crash_automation(within_seconds: float = 90) -> Automation:
    return Automation(
        name=AUTOMATION_NAME,
        description="Marks a flow run Crashed when its heartbeats stop (worker or machine died).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"No heartbeat for {within_seconds:g}s: the process running it died.")],
    )


def ensure_crash_automation(within_seconds: float = 90) -> Automation:
    """Create the automation, or replace ours if its window changed; idempotent."""
    wanted = crash_automation(within_seconds)
    try:
        existing = Automation.read(name=AUTOMATION_NAME)
    except ValueError:  # Automation.read raises ValueError when no automation has that name
        existing = None
    if existing is not None:
        if existing.trigger.within == wanted.trigger.within:
            return existing
        existing.delete()
    return wanted.create()


def main() -> None:
    parser = argparse.ArgumentParser(description="Install the crashed-run automation on the Prefect server.")
    parser.add_argument("--within", type=float, default=90, help="seconds without a heartbeat before Crashed")
    args = parser.parse_args()
    automation = ensure_crash_automation(args.within)
    print(f"automation '{automation.name}' ({automation.id}): Crashed after {args.within:g}s without a heartbeat")


if __name__ == "__main__":
    main()
