"""Trace routes: one trace with its logs, exemplars and deploys (API.md, Traces and services)."""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from correlator.api.deps import api_errors, app_state, require_token
from correlator.service.traces import TraceView, parse_trace_id, trace_view

router = APIRouter(prefix="/api/v1", tags=["traces"], dependencies=[Depends(require_token)])


class SpanEventOut(BaseModel):
    at: datetime
    name: str
    attributes: dict[str, str]


class SpanOut(BaseModel):
    """A span; `parent_span_id` is null for a root, and names the parent even when it never arrived."""

    span_id: str
    parent_span_id: str | None
    service: str | None
    name: str | None
    kind: str = Field(description="Unspecified, Internal, Server, Client, Producer or Consumer")
    start: datetime
    duration_ms: float
    status_code: str = Field(description="Unset, Ok or Error")
    status_message: str | None
    attributes: dict[str, str] = Field(description="The span's attributes (not its resource's)")
    events: list[SpanEventOut]


class LogOut(BaseModel):
    timestamp: datetime
    service: str | None
    severity_text: str | None
    severity_number: int | None
    body: str | None
    span_id: str | None
    attributes: dict[str, str]


class ExemplarOut(BaseModel):
    """A metric point's exemplar naming the trace; `span_id` is the span it was recorded in, when it says."""

    metric: str
    service: str | None
    value: float
    at: datetime
    span_id: str | None


class TraceDeployOut(BaseModel):
    """The deploy a service was running; `deploy_id` null when no stored deploy matches its telemetry."""

    service: str
    version: str | None
    deploy_id: str | None


class TraceOut(BaseModel):
    """A trace: spans depth first (siblings by start), logs and exemplars oldest first, deploys per service."""

    trace_id: str
    started_at: datetime
    duration_ms: float
    error: bool = Field(description="Whether any span has status Error")
    services: list[str]
    spans: list[SpanOut]
    logs: list[LogOut]
    exemplars: list[ExemplarOut]
    deploys: list[TraceDeployOut]

    @classmethod
    def of(cls, view: TraceView) -> TraceOut:
        return cls(
            trace_id=view.trace_id,
            started_at=view.started_at,
            duration_ms=view.duration_ms,
            error=view.error,
            services=list(view.services),
            spans=[
                SpanOut(
                    span_id=s.span_id,
                    parent_span_id=s.parent_span_id,
                    service=s.service,
                    name=s.name,
                    kind=s.kind,
                    start=s.start,
                    duration_ms=s.duration_ms,
                    status_code=s.status_code,
                    status_message=s.status_message,
                    attributes=s.attributes,
                    events=[SpanEventOut(at=e.at, name=e.name, attributes=e.attributes) for e in s.events],
                )
                for s in view.spans
            ],
            logs=[
                LogOut(
                    timestamp=log.timestamp,
                    service=log.service,
                    severity_text=log.severity_text,
                    severity_number=log.severity_number,
                    body=log.body,
                    span_id=log.span_id,
                    attributes=log.attributes,
                )
                for log in view.logs
            ],
            exemplars=[
                ExemplarOut(metric=e.metric, service=e.service, value=e.value, at=e.at, span_id=e.span_id)
                for e in view.exemplars
            ],
            deploys=[TraceDeployOut(service=d.service, version=d.version, deploy_id=d.deploy_id) for d in view.deploys],
        )


@router.get(
    "/traces/{trace_id}",
    summary="One trace: its spans as a tree, its logs, exemplars, and the deploy each service ran",
    responses=api_errors({404: "no span of this trace is stored"}),
)
async def show_trace(request: Request, trace_id: str = Path(description="32 hex digits, any case")) -> TraceOut:
    state = app_state(request)

    def view() -> TraceView:
        wanted = parse_trace_id(trace_id)
        # Implicit deploys come from telemetry on reads; cheap when nothing new arrived.
        state.deploys.reconcile()
        return trace_view(state.store, wanted)

    return TraceOut.of(await anyio.to_thread.run_sync(view))
