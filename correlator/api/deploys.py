"""Deploy routes: record a deploy, list deploys, show one (API.md, Deploys)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from correlator.api.deps import api_errors, app_state, instant, require_token, window
from correlator.correlate.impact import Impact, SideStats
from correlator.events.records import DeployEvent
from correlator.model import Deploy
from correlator.service.clock import utc_now
from correlator.store.records import DeployFilter

router = APIRouter(prefix="/api/v1", tags=["deploys"], dependencies=[Depends(require_token)])

DEPLOY_LIST_WINDOW = timedelta(days=30)


class DeployIn(BaseModel):
    """A deploy as CI or a person reports it; a re-post with the same id merges (later non-null fields win)."""

    model_config = ConfigDict(extra="forbid")

    deploy_id: str | None = Field(None, min_length=1, max_length=256)
    service: str = Field(min_length=1, max_length=256)
    version: str = Field(min_length=1, max_length=256)
    environment: str | None = Field(None, min_length=1, max_length=256, description="default: production")
    revision: str | None = None
    commit_time: str | None = Field(None, description="RFC 3339")
    status: Literal["started", "succeeded", "failed"] | None = None
    started_at: str | None = Field(None, description="RFC 3339; default: now")
    finished_at: str | None = Field(None, description="RFC 3339")
    source: Literal["api", "argocd", "github", "gitlab", "flux"] = "api"
    url: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class DeployRecorded(BaseModel):
    """The id of the deploy a write landed on; `created` false when it merged into an existing one."""

    deploy_id: str
    created: bool


class DeployOut(BaseModel):
    """A deploy (API.md, Deploys)."""

    deploy_id: str
    service: str
    environment: str
    version: str
    previous_version: str | None
    revision: str | None
    commit_time: datetime | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    source: str
    url: str | None
    is_rollback: bool
    rollback_of: str | None
    attributes: dict[str, str]

    @classmethod
    def of(cls, deploy: Deploy) -> DeployOut:
        return cls(
            deploy_id=deploy.deploy_id,
            service=deploy.service,
            environment=deploy.environment,
            version=deploy.version,
            previous_version=deploy.previous_version,
            revision=deploy.revision,
            commit_time=deploy.commit_time,
            status=deploy.status,
            started_at=deploy.started_at,
            finished_at=deploy.finished_at,
            source=deploy.source,
            url=deploy.url,
            is_rollback=deploy.is_rollback,
            rollback_of=deploy.rollback_of,
            attributes=deploy.attributes,
        )


class DeployList(BaseModel):
    deploys: list[DeployOut]


class ImpactWindowOut(BaseModel):
    """The deployed service's requests in one window."""

    since: datetime
    until: datetime
    requests: int
    error_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, side: SideStats) -> ImpactWindowOut:
        return cls(
            since=side.since,
            until=side.until,
            requests=side.requests,
            error_ratio=side.error_ratio,
            p50_ms=side.p50_ms,
            p95_ms=side.p95_ms,
            p99_ms=side.p99_ms,
        )


class ErrorTypeCount(BaseModel):
    type: str
    message: str
    count: int


class ImpactOut(BaseModel):
    """What the deploy did: regression, healthy or insufficient_data, with sentences of evidence."""

    verdict: Literal["regression", "healthy", "insufficient_data"]
    before: ImpactWindowOut
    after: ImpactWindowOut
    error_ratio_delta: float | None
    p95_ms_delta: float | None
    new_error_types: list[ErrorTypeCount]
    evidence: list[str]

    @classmethod
    def of(cls, impact: Impact) -> ImpactOut:
        return cls(
            verdict=impact.verdict,
            before=ImpactWindowOut.of(impact.before),
            after=ImpactWindowOut.of(impact.after),
            error_ratio_delta=impact.error_ratio_delta,
            p95_ms_delta=impact.p95_ms_delta,
            new_error_types=[
                ErrorTypeCount(type=e.type, message=e.message, count=e.count) for e in impact.new_error_types
            ],
            evidence=list(impact.evidence),
        )


class DeployDetail(DeployOut):
    """A deploy with its impact on its service."""

    impact: ImpactOut


@router.post(
    "/deploys",
    status_code=201,
    summary="Record a deploy (201 created, 200 merged into an existing one)",
    responses={200: {"model": DeployRecorded, "description": "merged into an existing deploy"}},
)
async def record_deploy(body: DeployIn, request: Request) -> JSONResponse:
    now = utc_now()
    event = DeployEvent(
        service=body.service,
        version=body.version,
        source=body.source,
        deploy_id=body.deploy_id,
        environment=body.environment,
        revision=body.revision,
        commit_time=instant(body.commit_time, "commit_time", now),
        status=body.status,
        started_at=instant(body.started_at, "started_at", now),
        finished_at=instant(body.finished_at, "finished_at", now),
        url=body.url,
        attributes=body.attributes,
    )
    recorded = await anyio.to_thread.run_sync(app_state(request).deploys.record, event)
    out = DeployRecorded(deploy_id=recorded.deploy_id, created=recorded.created)
    return JSONResponse(out.model_dump(), status_code=201 if recorded.created else 200)


@router.get("/deploys", summary="Deploys started in the window, newest first")
async def list_deploys(
    request: Request,
    service: str | None = None,
    environment: str | None = None,
    since: str | None = Query(None, description="RFC 3339 or a duration back from now (30d); default 30 days"),
    until: str | None = Query(None, description="RFC 3339 or a duration back from now; default now"),
    limit: int = Query(100, ge=1, le=1000),
) -> DeployList:
    span = window(request, since, until, DEPLOY_LIST_WINDOW, utc_now())
    wanted = DeployFilter(span.since, span.until, service=service, environment=environment, limit=limit)
    deploys = await anyio.to_thread.run_sync(app_state(request).deploys.list, wanted)
    return DeployList(deploys=[DeployOut.of(d) for d in deploys])


@router.get(
    "/deploys/{deploy_id}",
    summary="One deploy, with its impact",
    responses=api_errors({404: "no deploy with this id"}),
)
async def show_deploy(deploy_id: str, request: Request) -> DeployDetail:
    deploy, impact = await anyio.to_thread.run_sync(app_state(request).deploys.detail, deploy_id)
    return DeployDetail(**DeployOut.of(deploy).model_dump(), impact=ImpactOut.of(impact))
