"""Incident routes: declare, transition, note, name the cause, list and show (API.md, Incidents)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from correlator.api.deps import api_errors, app_state, instant, require_token, window
from correlator.errors import BadRequest
from correlator.model import Incident, IncidentAnalysis, TimelineEntry
from correlator.service.analysis import AnalysedIncident
from correlator.service.clock import utc_now
from correlator.service.incidents import ACTIVE_STATES, STATES
from correlator.store.records import IncidentFilter

router = APIRouter(prefix="/api/v1", tags=["incidents"], dependencies=[Depends(require_token)])

INCIDENT_LIST_WINDOW = timedelta(days=30)


class IncidentIn(BaseModel):
    """An incident declared by hand."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=1000)
    service: str = Field(min_length=1, max_length=256)
    severity: str | None = Field(None, max_length=64)
    opened_at: str | None = Field(None, description="RFC 3339; default: now")
    labels: dict[str, str] = Field(default_factory=dict)


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: str | None = Field(None, description="RFC 3339; default: now")
    note: str | None = Field(None, max_length=10_000)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)
    at: str | None = Field(None, description="RFC 3339; default: now")


class CauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deploy_id: str = Field(min_length=1)


class IncidentCreated(BaseModel):
    incident_id: str


class IncidentSummary(BaseModel):
    """An incident without its details (API.md, Incidents)."""

    incident_id: str
    title: str
    service: str
    severity: str | None
    status: str
    source: str
    labels: dict[str, str]
    opened_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    impact_started_at: datetime | None = Field(description="when the service's errors or latency began to rise")
    time_to_resolve_s: float | None
    cause_deploy_id: str | None

    @classmethod
    def of(cls, incident: Incident, analysis: IncidentAnalysis | None = None) -> IncidentSummary:
        resolved = incident.resolved_at
        return cls(
            incident_id=incident.incident_id,
            title=incident.title,
            service=incident.service,
            severity=incident.severity,
            status=incident.status,
            source=incident.source,
            labels=incident.labels,
            opened_at=incident.opened_at,
            acknowledged_at=incident.acknowledged_at,
            mitigated_at=incident.mitigated_at,
            resolved_at=resolved,
            impact_started_at=analysis.impact_started_at if analysis else None,
            time_to_resolve_s=(resolved - incident.opened_at).total_seconds() if resolved else None,
            cause_deploy_id=incident.cause_deploy_id,
        )


class TimelineOut(BaseModel):
    at: datetime
    kind: str
    text: str

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineOut:
        return cls(at=entry.at, kind=entry.kind, text=entry.text)


class ErrorTypeOut(BaseModel):
    type: str
    message: str
    count: int


class SuspectOut(BaseModel):
    deploy_id: str
    service: str
    version: str
    started_at: datetime
    score: float
    relation: str
    evidence: list[str]


class IncidentDetail(IncidentSummary):
    """An incident with its timeline and its analysis: suspects best first, affected services, exemplars."""

    timeline: list[TimelineOut]
    suspects: list[SuspectOut]
    affected_services: list[str]
    exemplar_trace_ids: list[str]
    top_errors: list[ErrorTypeOut]

    @classmethod
    def of_detail(cls, detail: AnalysedIncident) -> IncidentDetail:
        summary = IncidentSummary.of(detail.incident, detail.analysis).model_dump()
        analysis = detail.analysis
        assert detail.view is not None
        return cls(
            **summary,
            timeline=[TimelineOut.of(e) for e in detail.view.timeline],
            suspects=[SuspectOut.model_validate(s) for s in analysis.suspects] if analysis else [],
            affected_services=analysis.affected_services if analysis else [detail.incident.service],
            exemplar_trace_ids=analysis.exemplar_trace_ids if analysis else [],
            top_errors=[ErrorTypeOut.model_validate(e) for e in analysis.top_errors] if analysis else [],
        )


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


def _statuses(status: str | None) -> tuple[tuple[str, ...], bool]:
    """The states asked for, and whether the window applies (not when only unresolved states are asked)."""
    if not status:
        return (), True
    wanted: list[str] = []
    for item in (part.strip().lower() for part in status.split(",") if part.strip()):
        if item == "active":
            wanted += ACTIVE_STATES
        elif item in STATES:
            wanted.append(item)
        else:
            raise BadRequest(f"status: expected one or more of {', '.join((*STATES, 'active'))}, got {item!r}")
    states = tuple(dict.fromkeys(wanted))
    return states, "resolved" in states


@router.post("/incidents", status_code=201, summary="Declare an incident by hand")
async def declare_incident(body: IncidentIn, request: Request) -> IncidentCreated:
    opened_at = instant(body.opened_at, "opened_at", utc_now())
    declare = partial(app_state(request).incidents.declare, body.title, body.service, body.severity, opened_at)
    incident_id = await anyio.to_thread.run_sync(declare, body.labels)
    return IncidentCreated(incident_id=incident_id)


@router.post(
    "/incidents/{incident_id}/notes",
    status_code=201,
    summary="Add a note to an incident's timeline",
    response_model=IncidentCreated,
    responses=api_errors({404: "no incident with this id"}),
)
async def add_note(incident_id: str, body: NoteIn, request: Request) -> JSONResponse:
    at = instant(body.at, "at", utc_now())
    await anyio.to_thread.run_sync(partial(app_state(request).incidents.add_note, incident_id, body.text, at))
    return JSONResponse({"incident_id": incident_id}, status_code=201)


@router.post(
    "/incidents/{incident_id}/cause",
    summary="Name the deploy that caused an incident, by hand",
    responses=api_errors({404: "no incident, or no deploy, with this id"}),
)
async def set_cause(incident_id: str, body: CauseIn, request: Request) -> IncidentSummary:
    change = partial(app_state(request).incidents.set_cause, incident_id, body.deploy_id)
    return IncidentSummary.of(await anyio.to_thread.run_sync(change))


@router.post(
    "/incidents/{incident_id}/{transition}",
    summary="Acknowledge, mitigate or resolve an incident (409 when its state does not allow it)",
    responses=api_errors({404: "no incident with this id", 409: "the incident's state does not allow this transition"}),
)
async def transition_incident(
    incident_id: str,
    transition: Literal["acknowledge", "mitigate", "resolve"],
    request: Request,
    body: TransitionIn | None = None,
) -> IncidentSummary:
    body = body or TransitionIn()
    at = instant(body.at, "at", utc_now())
    change = partial(app_state(request).incidents.transition, incident_id, transition, at, body.note)
    return IncidentSummary.of(await anyio.to_thread.run_sync(change))


@router.get("/incidents", summary="Incidents opened in the window, newest first")
async def list_incidents(
    request: Request,
    status: str | None = Query(None, description="states, comma-separated, or 'active'"),
    service: str | None = None,
    severity: str | None = None,
    since: str | None = Query(None, description="RFC 3339 or a duration back from now (30d); default 30 days"),
    until: str | None = Query(None, description="RFC 3339 or a duration back from now; default now"),
    limit: int = Query(100, ge=1, le=1000),
) -> IncidentList:
    states, windowed = _statuses(status)
    span = window(request, since, until, INCIDENT_LIST_WINDOW, utc_now())
    wanted = IncidentFilter(
        span.since,
        span.until,
        statuses=states,
        service=service,
        severity=severity.lower() if severity else None,
        window=windowed,
        limit=limit,
    )
    found = await anyio.to_thread.run_sync(app_state(request).analyses.summaries, wanted)
    return IncidentList(incidents=[IncidentSummary.of(i.incident, i.analysis) for i in found])


@router.get(
    "/incidents/{incident_id}",
    summary="One incident with its timeline, suspects and evidence",
    responses=api_errors({404: "no incident with this id"}),
)
async def show_incident(incident_id: str, request: Request) -> IncidentDetail:
    detail = await anyio.to_thread.run_sync(app_state(request).analyses.detail, incident_id)
    return IncidentDetail.of_detail(detail)
