"""Report routes: MTTR and DORA, each with the definitions it was computed by (API.md, Reports)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from correlator.api.deps import app_state, require_token, window
from correlator.correlate.reports import (
    DORA_DEFINITION,
    MTTR_COLUMNS,
    MTTR_DEFINITION,
    DoraReport,
    MttrReport,
    as_csv,
    as_markdown,
    mttr_rows,
)
from correlator.errors import BadRequest
from correlator.service.clock import utc_now

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], dependencies=[Depends(require_token)])

REPORT_WINDOW = timedelta(days=30)
FORMATS = ("json", "csv", "md")
SINCE = Query(None, description="RFC 3339 or a duration back from now (30d); default 30 days")
UNTIL = Query(None, description="RFC 3339 or a duration back from now; default now")


class MttrGroupOut(BaseModel):
    key: str
    incidents: int
    open_incidents: int
    mttr_s: float | None
    median_ttr_s: float | None
    p90_ttr_s: float | None


class MttrOut(BaseModel):
    """Time to resolve, detect and acknowledge over incidents opened in the window."""

    since: datetime
    until: datetime
    definition: dict[str, str]
    incidents: int
    open_incidents: int
    mttr_s: float | None
    median_ttr_s: float | None
    p90_ttr_s: float | None
    mean_ttd_s: float | None
    mean_tta_s: float | None
    groups: list[MttrGroupOut]

    @classmethod
    def of(cls, report: MttrReport) -> MttrOut:
        return cls(
            since=report.since,
            until=report.until,
            definition=MTTR_DEFINITION,
            incidents=report.incidents,
            open_incidents=report.open_incidents,
            mttr_s=report.resolve.mean_s,
            median_ttr_s=report.resolve.median_s,
            p90_ttr_s=report.resolve.p90_s,
            mean_ttd_s=report.detect.mean_s,
            mean_tta_s=report.acknowledge.mean_s,
            groups=[
                MttrGroupOut(
                    key=g.key,
                    incidents=g.incidents,
                    open_incidents=g.open_incidents,
                    mttr_s=g.resolve.mean_s,
                    median_ttr_s=g.resolve.median_s,
                    p90_ttr_s=g.resolve.p90_s,
                )
                for g in report.groups
            ],
        )


class DoraBandsOut(BaseModel):
    deployment_frequency: Literal["elite", "high", "medium", "low"] | None
    lead_time: Literal["elite", "high", "medium", "low"] | None
    change_failure_rate: Literal["elite", "high", "medium", "low"] | None
    time_to_restore: Literal["elite", "high", "medium", "low"] | None


class DoraOut(BaseModel):
    """The four DORA keys in one environment, with their performance bands."""

    since: datetime
    until: datetime
    environment: str
    definition: dict[str, str]
    deploys: int
    deploys_per_day: float
    failed_deploys: int
    change_failure_rate: float | None
    mttr_s: float | None
    median_ttr_s: float | None
    lead_time_s: float | None
    bands: DoraBandsOut

    @classmethod
    def of(cls, report: DoraReport) -> DoraOut:
        return cls(
            since=report.since,
            until=report.until,
            environment=report.environment,
            definition=DORA_DEFINITION,
            deploys=report.deploys,
            deploys_per_day=report.deploys_per_day,
            failed_deploys=report.failed_deploys,
            change_failure_rate=report.change_failure_rate,
            mttr_s=report.restore.mean_s,
            median_ttr_s=report.restore.median_s,
            lead_time_s=report.lead_time_s,
            bands=DoraBandsOut.model_validate(report.bands),
        )


@router.get(
    "/mttr",
    summary="MTTR, MTTD and MTTA over incidents opened in the window; json, csv or md",
    response_model=MttrOut,
    responses={200: {"content": {"text/csv": {}, "text/markdown": {}}}},
)
async def mttr(
    request: Request,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    group_by: str | None = Query(None, description="service, severity, team or month"),
    format: str = Query("json", description="json, csv or md"),
    exclude: list[str] = Query(default_factory=list, description="an incident id, or label:<key>=<value>; repeats"),
) -> Response:
    if format not in FORMATS:
        raise BadRequest(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    span = window(request, since, until, REPORT_WINDOW, utc_now())
    report = await anyio.to_thread.run_sync(partial(app_state(request).reports.mttr, span, group_by, exclude))
    if format == "csv":
        return PlainTextResponse(as_csv(mttr_rows(report), MTTR_COLUMNS), media_type="text/csv")
    if format == "md":
        return PlainTextResponse(
            as_markdown(mttr_rows(report), MTTR_COLUMNS, MTTR_DEFINITION), media_type="text/markdown"
        )
    return Response(MttrOut.of(report).model_dump_json(), media_type="application/json")


@router.get("/dora", summary="Deployment frequency, change failure rate, time to restore and lead time, banded")
async def dora(
    request: Request,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    service: str | None = None,
    environment: str = "production",
) -> DoraOut:
    span = window(request, since, until, REPORT_WINDOW, utc_now())
    report = await anyio.to_thread.run_sync(partial(app_state(request).reports.dora, span, environment, service))
    return DoraOut.of(report)
