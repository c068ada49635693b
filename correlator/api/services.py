"""Service routes: the service list with health, and one service's health (API.md, Traces and services)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from correlator.api.deploys import DeployOut
from correlator.api.deps import api_errors, app_state, require_token, window
from correlator.api.incidents import ErrorTypeOut, IncidentSummary
from correlator.service.clock import utc_now
from correlator.service.health import ServiceHealth

router = APIRouter(prefix="/api/v1", tags=["services"], dependencies=[Depends(require_token)])

HEALTH_WINDOW = timedelta(hours=1)
SINCE = Query(None, description="RFC 3339 or a duration back from now (15m); default 1 hour")
UNTIL = Query(None, description="RFC 3339 or a duration back from now; default now")


class LatencyOut(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class EndpointOut(BaseModel):
    name: str
    requests: int
    error_ratio: float
    p95_ms: float


class ServiceHealthOut(BaseModel):
    """One service's health in a window; `status` is no_data, healthy, degraded or failing."""

    service: str
    since: datetime
    until: datetime
    status: str
    requests: int
    rate_rps: float
    error_ratio: float | None
    latency_ms: LatencyOut
    log_errors: int
    current_version: str | None
    current_deploy_id: str | None
    recent_deploys: list[DeployOut]
    open_incidents: list[IncidentSummary]
    upstream: list[str]
    downstream: list[str]
    top_errors: list[ErrorTypeOut]
    top_endpoints: list[EndpointOut]

    @classmethod
    def of(cls, health: ServiceHealth) -> ServiceHealthOut:
        red = health.red
        return cls(
            service=red.service,
            since=health.since,
            until=health.until,
            status=red.status,
            requests=red.requests,
            rate_rps=red.rate_rps,
            error_ratio=red.error_ratio,
            latency_ms=LatencyOut(p50=red.p50_ms, p95=red.p95_ms, p99=red.p99_ms),
            log_errors=red.log_errors,
            current_version=health.current_version,
            current_deploy_id=health.current_deploy_id,
            recent_deploys=[DeployOut.of(d) for d in health.recent_deploys],
            open_incidents=[IncidentSummary.of(i) for i in health.open_incidents],
            upstream=health.upstream,
            downstream=health.downstream,
            top_errors=[ErrorTypeOut(type=e.type, message=e.message, count=e.count) for e in health.top_errors],
            top_endpoints=[
                EndpointOut(name=e.name, requests=e.requests, error_ratio=e.error_ratio, p95_ms=e.p95_ms)
                for e in health.top_endpoints
            ],
        )


class ServiceList(BaseModel):
    services: list[ServiceHealthOut]


@router.get("/services", summary="Every service with telemetry or deploys in the window, or an active incident")
async def list_services(request: Request, since: str | None = SINCE, until: str | None = UNTIL) -> ServiceList:
    span = window(request, since, until, HEALTH_WINDOW, utc_now())
    healths = await anyio.to_thread.run_sync(app_state(request).health.services, span)
    return ServiceList(services=[ServiceHealthOut.of(h) for h in healths])


@router.get(
    "/services/{service}/health",
    summary="One service's health (404 for a service never seen)",
    responses=api_errors({404: "no telemetry, deploy or incident ever named this service"}),
)
async def service_health(
    service: str, request: Request, since: str | None = SINCE, until: str | None = UNTIL
) -> ServiceHealthOut:
    span = window(request, since, until, HEALTH_WINDOW, utc_now())
    health = await anyio.to_thread.run_sync(partial(app_state(request).health.service, service, span))
    return ServiceHealthOut.of(health)
