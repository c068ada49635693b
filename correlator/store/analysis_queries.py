"""Queries behind incident analysis: a service's minutes, its failing traces, its failing callers, stored results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from correlator.model import IncidentAnalysis
from correlator.store.client import Store
from correlator.store.rollup_sql import MINUTES_IN_WINDOW, SPANS_AT_EDGES, minute_parameters
from correlator.store.schema_analysis import INCIDENT_ANALYSIS
from correlator.store.schema_otel import TRACES
from correlator.store.schema_rollups import CALL_SPANS, SERVICE_MINUTES
from correlator.store.telemetry_sql import IN_WINDOW, IS_ERROR, IS_REQUEST

MINUTES = f"""
SELECT minute, sum(requests), sum(errors), quantilesMerge(0.5, 0.95, 0.99)(duration)[2] / 1e6
FROM (
    SELECT Minute AS minute, sum(Requests) AS requests, sum(Errors) AS errors,
           quantilesMergeState(0.5, 0.95, 0.99)(Duration) AS duration
    FROM $service_minutes
    WHERE ServiceName = {{service:String}} AND {MINUTES_IN_WINDOW}
    GROUP BY minute
    UNION ALL
    SELECT toStartOfMinute(Timestamp) AS minute, count(), countIf({IS_ERROR}),
           quantilesState(0.5, 0.95, 0.99)(Duration)
    FROM $traces
    WHERE ServiceName = {{service:String}} AND {SPANS_AT_EDGES} AND {IS_REQUEST}
    GROUP BY minute
)
GROUP BY minute
ORDER BY minute
"""
"""A service's requests, failed requests and p95 (ms) per minute: whole minutes from the RED minutes, the
partial ones at the window's ends from the spans (store/rollup_sql.py)."""


def minutes(store: Store, service: str, since: datetime, until: datetime) -> pl.DataFrame:
    """minute, requests, errors, p95_ms for the minutes with requests."""
    sql = store.sql(MINUTES, traces=TRACES, service_minutes=SERVICE_MINUTES)
    rows = store.rows(sql, {"service": service, **minute_parameters(since, until)})
    schema: dict[str, pl.DataType] = {
        "minute": pl.Datetime("us", "UTC"), "requests": pl.Int64(), "errors": pl.Int64(), "p95_ms": pl.Float64(),
    }  # fmt: skip
    return pl.DataFrame(
        [(m.replace(tzinfo=UTC) if m.tzinfo is None else m, n, e, p) for m, n, e, p in rows],
        schema=schema,
        orient="row",
    )


FAILING_TRACES = f"""
SELECT TraceId, max(Timestamp) AS last
FROM $traces
WHERE ServiceName = {{service:String}} AND {IN_WINDOW} AND {IS_REQUEST} AND {IS_ERROR} AND TraceId != ''
GROUP BY TraceId
ORDER BY last DESC, TraceId
LIMIT {{limit:UInt32}}
"""
"""The latest traces in which a service failed a request."""


def failing_traces(store: Store, service: str, since: datetime, until: datetime, limit: int = 5) -> list[str]:
    """Trace ids of the service's latest failed requests, newest first."""
    parameters = {"service": service, "since": since, "until": until, "limit": limit}
    return [str(row[0]) for row in store.rows(store.sql(FAILING_TRACES, traces=TRACES), parameters)]


FAILING_CALLERS = """
SELECT calls.ServiceName AS caller, countIf(calls.Failed) AS errors
FROM (
    SELECT Call, ServiceName, Failed FROM $calls
    WHERE Served = 0 AND ServiceName NOT IN {services:Array(String)}
      AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp < {until:DateTime64(9, 'UTC')}
) AS calls
INNER JOIN (
    SELECT Call FROM $calls
    WHERE Served = 1 AND ServiceName IN {services:Array(String)}
      AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp < {until:DateTime64(9, 'UTC')}
) AS served ON calls.Call = served.Call
GROUP BY caller
HAVING errors > 0
ORDER BY errors DESC, caller
"""
"""Services whose calls into a set of services failed in a window, most failures first (both sides from
call_spans, the time-ordered copy of the spans that are one side of a call)."""


def failing_callers(store: Store, services: Sequence[str], since: datetime, until: datetime) -> list[str]:
    """Callers (outside `services`) that saw failing calls into them."""
    parameters = {"services": list(services), "since": since, "until": until}
    return [str(row[0]) for row in store.rows(store.sql(FAILING_CALLERS, calls=CALL_SPANS), parameters)]


_FIELDS = (
    "incident_id", "service", "impact_started_at", "impact_signal", "suspects", "top_suspect_deploy_id",
    "top_suspect_score", "affected_services", "exemplar_trace_ids", "top_errors", "computed_at", "frozen",
)  # fmt: skip


def write_analysis(store: Store, analysis: IncidentAnalysis) -> None:
    """Store an analysis; the latest `computed_at` of an incident wins."""
    values = {name: getattr(analysis, name) for name in _FIELDS}
    values["suspects"] = json.dumps(analysis.suspects, default=str)
    values["top_errors"] = json.dumps(analysis.top_errors)
    store.insert_columns(INCIDENT_ANALYSIS, list(_FIELDS), [[values[name]] for name in _FIELDS])


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def read_analyses(store: Store, incident_ids: Sequence[str]) -> dict[str, IncidentAnalysis]:
    """The stored analyses of some incidents, by incident id."""
    if not incident_ids:
        return {}
    sql = store.sql(
        f"SELECT {', '.join(_FIELDS)} FROM $analysis FINAL WHERE has({{ids:Array(String)}}, incident_id)",
        analysis=INCIDENT_ANALYSIS,
    )
    result: dict[str, IncidentAnalysis] = {}
    for row in store.rows(sql, {"ids": list(incident_ids)}):
        incident_id, service, started, signal, suspects, top_id, top_score, affected, exemplars, errors, at, frozen = (
            row
        )
        result[incident_id] = IncidentAnalysis(
            incident_id=str(incident_id),
            service=str(service),
            impact_started_at=_utc(started),
            impact_signal=str(signal),
            suspects=json.loads(suspects),
            top_suspect_deploy_id=top_id,
            top_suspect_score=top_score,
            affected_services=list(affected),
            exemplar_trace_ids=list(exemplars),
            top_errors=json.loads(errors),
            computed_at=_utc(at) or at,
            frozen=bool(frozen),
        )
    return result
