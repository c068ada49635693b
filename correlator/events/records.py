"""What webhook payloads become: deploy events and alert events, before they meet the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

DeployStatus = Literal["started", "succeeded", "failed", "rolled_back"]
DeploySource = Literal["api", "argocd", "github", "gitlab", "flux", "telemetry"]
AlertSource = Literal["alertmanager", "grafana", "pagerduty"]
# What an alert notification asks of its incident: open (or refresh) it, acknowledge it, resolve it.
AlertAction = Literal["firing", "acknowledged", "resolved"]


@dataclass(frozen=True)
class DeployEvent:
    """One deploy as a platform reported it; `None` fields leave the stored value alone (later non-null wins)."""

    service: str
    version: str | None
    source: DeploySource
    deploy_id: str | None = None
    environment: str | None = None
    revision: str | None = None
    commit_time: datetime | None = None
    status: DeployStatus | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertEvent:
    """One alert (or paging incident) state a monitoring system reported; times are timezone-aware UTC."""

    source: AlertSource
    fingerprint: str
    action: AlertAction
    starts_at: datetime
    title: str
    ends_at: datetime | None = None
    service: str | None = None
    severity: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A parsed webhook delivery: its records and the platform's delivery id, when it sends one, for dedup."""

    delivery_id: str | None
    deploys: tuple[DeployEvent, ...] = ()
    alerts: tuple[AlertEvent, ...] = ()
