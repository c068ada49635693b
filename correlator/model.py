"""The records every layer speaks of: a deploy and an incident as stored, and what telemetry says ran when.

Frozen dataclasses with no behaviour and no imports of the correlator, so any layer may use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Deploy:
    """One deploy event of a service in an environment, as stored (API.md, Deploys)."""

    deploy_id: str
    service: str
    environment: str
    version: str
    started_at: datetime
    source: str
    reported_status: str
    status: str
    previous_version: str | None = None
    revision: str | None = None
    commit_time: datetime | None = None
    finished_at: datetime | None = None
    url: str | None = None
    is_rollback: bool = False
    rollback_of: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Incident:
    """One incident as stored: what it is about and when it changed state (API.md, Incidents)."""

    incident_id: str
    title: str
    service: str
    status: str
    source: str
    opened_at: datetime
    severity: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None
    alert_starts_at: datetime | None = None
    summary: str | None = None
    url: str | None = None
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    cause_deploy_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an incident's append-only timeline; `event_key` names the fact so replays do not repeat it."""

    incident_id: str
    event_key: str
    at: datetime
    kind: str
    text: str


@dataclass(frozen=True)
class VersionMinute:
    """Telemetry of one (service, environment, version, deployment.id) within one minute."""

    service: str
    environment: str
    version: str
    deployment_id: str
    revision: str
    first_seen: datetime
    last_seen: datetime
    records: int


@dataclass(frozen=True)
class VersionRun:
    """An unbroken stretch in which telemetry showed a version running; a version that comes back is a new run."""

    service: str
    environment: str
    version: str
    deployment_id: str
    revision: str
    first_seen: datetime
    last_seen: datetime
    records: int


@dataclass(frozen=True)
class Edge:
    """One caller-to-callee edge of the service graph in a window, whoever witnessed it (API.md, topology).

    `requests` comes from the mesh where the mesh sees the edge (it sees unsampled traffic), else from spans;
    `mtls` is None when nothing says; `sources` lists every witness (`spans`, `istio`, `linkerd`).
    """

    source: str
    destination: str
    requests: float
    error_ratio: float | None
    p95_ms: float | None
    mtls: bool | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ErrorCount:
    """One error type (exception type and message shape) and how often it happened."""

    type: str
    message: str
    count: int


@dataclass(frozen=True)
class Endpoint:
    """One endpoint (a request's span name) of a service, with its traffic."""

    name: str
    requests: int
    error_ratio: float
    p95_ms: float


@dataclass(frozen=True)
class IncidentAnalysis:
    """An incident's stored analysis: impact start, suspects (JSON-ready, best first), affected services, exemplars."""

    incident_id: str
    service: str
    impact_started_at: datetime | None
    impact_signal: str
    suspects: list[dict[str, object]]
    top_suspect_deploy_id: str | None
    top_suspect_score: float | None
    affected_services: list[str]
    exemplar_trace_ids: list[str]
    top_errors: list[dict[str, object]]
    computed_at: datetime
    frozen: bool
