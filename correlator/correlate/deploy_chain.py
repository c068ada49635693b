"""Links the deploys of one (service, environment) into a chain: previous versions, rollbacks, undone deploys."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from correlator.model import Deploy


def _order(deploy: Deploy) -> tuple[datetime, str]:
    return deploy.started_at, deploy.deploy_id


def link_deploys(deploys: Sequence[Deploy]) -> list[Deploy]:
    """The same deploys with previous_version, is_rollback, rollback_of and status derived, in start order.

    The chain is rebuilt from scratch each time, so events that arrive late or out of order land right.
    A failed deploy never ran: it names the version it would have replaced but replaces nothing. A deploy
    whose version differs from the running one and ran there before is a rollback of the running deploy,
    which is then `rolled_back` (API.md, Deploys).
    """
    running: Deploy | None = None
    versions_seen: set[str] = set()
    undone: set[str] = set()
    linked: list[Deploy] = []
    for deploy in sorted(deploys, key=_order):
        previous_version = running.version if running else None
        is_rollback = (
            deploy.reported_status != "failed"
            and running is not None
            and deploy.version != running.version
            and deploy.version in versions_seen
        )
        rollback_of = running.deploy_id if is_rollback and running is not None else None
        if rollback_of is not None:
            undone.add(rollback_of)
        linked.append(
            dataclasses.replace(
                deploy, previous_version=previous_version, is_rollback=is_rollback, rollback_of=rollback_of
            )
        )
        if deploy.reported_status != "failed":
            running = deploy
            versions_seen.add(deploy.version)
    return [
        dataclasses.replace(d, status="rolled_back" if d.deploy_id in undone else d.reported_status) for d in linked
    ]
