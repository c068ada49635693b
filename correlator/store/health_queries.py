"""Queries behind service health: RED per service, error logs, baselines, top errors and endpoints, versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from correlator.store.client import Store
from correlator.store.rollup_sql import (
    HOURS_IN_WINDOW,
    MINUTES_AROUND_HOURS,
    MINUTES_IN_WINDOW,
    SPANS_AT_EDGES,
    hour_parameters,
    minute_parameters,
)
from correlator.store.schema_otel import LOGS, TRACES
from correlator.store.schema_platform import DEPLOYMENTS, INCIDENTS, SERVICE_VERSION_MINUTES, SERVICE_VERSIONS
from correlator.store.schema_rollups import (
    SERVICE_ERROR_MINUTES,
    SERVICE_HOURS,
    SERVICE_MINUTES,
    SERVICE_RED_MINUTES,
    SPAN_MINUTES,
)
from correlator.store.telemetry_sql import ERROR_SHAPE, ERROR_TYPE, IN_WINDOW, IS_ERROR, IS_ERROR_LOG, IS_REQUEST

# An empty list of services means every service. `IN` rather than has(): the engine turns an IN over the sort
# key's first column into granule ranges, while has() is evaluated row by row (4.6 times slower on a day of
# 50 services, docs/benchmarks.md). empty() of the bound array folds to a constant, so the OR costs nothing.
_SERVICES = "(empty({services:Array(String)}) OR ServiceName IN {services:Array(String)})"


def _frame(store: Store, sql: str, parameters: Mapping[str, object], schema: Mapping[str, Any]) -> pl.DataFrame:
    rows = store.rows(sql, parameters)
    return pl.DataFrame(rows, schema=list(schema.items()), orient="row")


# Whole minutes come from the per-minute tables, the partial minutes at the window's ends from the spans
# (store/rollup_sql.py); both halves carry the same aggregate states, merged in the outer query.
_RED_PARTS = f"""
    SELECT ServiceName, SpanName, sum(Requests) AS requests, sum(Errors) AS errors,
           quantilesMergeState(0.5, 0.95, 0.99)(Duration) AS duration
    FROM $red_minutes
    WHERE {MINUTES_IN_WINDOW} AND {_SERVICES}
    GROUP BY ServiceName, SpanName
    UNION ALL
    SELECT ServiceName, SpanName, count(), countIf({IS_ERROR}), quantilesState(0.5, 0.95, 0.99)(Duration)
    FROM $traces
    WHERE {SPANS_AT_EDGES} AND {IS_REQUEST} AND {_SERVICES}
    GROUP BY ServiceName, SpanName
"""

_SERVICE_PARTS = f"""
    SELECT ServiceName, sum(Requests) AS requests, sum(Errors) AS errors,
           quantilesMergeState(0.5, 0.95, 0.99)(Duration) AS duration
    FROM $service_minutes
    WHERE {MINUTES_IN_WINDOW} AND {_SERVICES}
    GROUP BY ServiceName
    UNION ALL
    SELECT ServiceName, count(), countIf({IS_ERROR}), quantilesState(0.5, 0.95, 0.99)(Duration)
    FROM $traces
    WHERE {SPANS_AT_EDGES} AND {IS_REQUEST} AND {_SERVICES}
    GROUP BY ServiceName
"""

RED = f"""
SELECT ServiceName, sum(requests), sum(errors), quantilesMerge(0.5, 0.95, 0.99)(duration)
FROM ({_SERVICE_PARTS})
GROUP BY ServiceName
"""
"""Requests, failed requests and duration percentiles (ns) per service in a window."""


def _window(services: Sequence[str], since: datetime, until: datetime) -> dict[str, object]:
    return {"services": list(services), **minute_parameters(since, until)}


def _rollup_sql(store: Store, template: str) -> str:
    return store.sql(
        template,
        traces=TRACES,
        service_minutes=SERVICE_MINUTES,
        service_hours=SERVICE_HOURS,
        red_minutes=SERVICE_RED_MINUTES,
        error_minutes=SERVICE_ERROR_MINUTES,
    )


_RED_SCHEMA = {
    "service": pl.String, "requests": pl.Int64, "errors": pl.Int64,
    "p50_ms": pl.Float64, "p95_ms": pl.Float64, "p99_ms": pl.Float64,
}  # fmt: skip


def red(store: Store, services: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
    """service, requests, errors, p50_ms, p95_ms, p99_ms per service with requests in the window."""
    rows = store.rows(_rollup_sql(store, RED), _window(services, since, until))
    return pl.DataFrame(
        [(s, int(n), int(e), q[0] / 1e6, q[1] / 1e6, q[2] / 1e6) for s, n, e, q in rows],
        schema=list(_RED_SCHEMA.items()),
        orient="row",
    )


BASELINE_P95 = f"""
SELECT ServiceName, quantilesMerge(0.5, 0.95, 0.99)(duration)[2] / 1e6
FROM (
    SELECT ServiceName, quantilesMergeState(0.5, 0.95, 0.99)(Duration) AS duration
    FROM $service_hours
    WHERE {HOURS_IN_WINDOW} AND {_SERVICES}
    GROUP BY ServiceName
    UNION ALL
    SELECT ServiceName, quantilesMergeState(0.5, 0.95, 0.99)(Duration)
    FROM $service_minutes
    WHERE {MINUTES_AROUND_HOURS} AND {_SERVICES}
    GROUP BY ServiceName
    UNION ALL
    SELECT ServiceName, quantilesState(0.5, 0.95, 0.99)(Duration)
    FROM $traces
    WHERE {SPANS_AT_EDGES} AND {IS_REQUEST} AND {_SERVICES}
    GROUP BY ServiceName
)
GROUP BY ServiceName
"""
"""Each service's p95 (ms) over a baseline window (the 24 hours before the window looked at)."""


def baseline_p95(store: Store, services: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
    """service, baseline_p95_ms."""
    sql = _rollup_sql(store, BASELINE_P95)
    parameters = {"services": list(services), **hour_parameters(since, until)}
    return _frame(store, sql, parameters, {"service": pl.String, "baseline_p95_ms": pl.Float64})


LOG_ERRORS = f"""
SELECT ServiceName, countIf({IS_ERROR_LOG})
FROM $logs
WHERE {IN_WINDOW} AND {_SERVICES}
GROUP BY ServiceName
"""
"""Log records at ERROR or above per service in a window."""


def log_errors(store: Store, services: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
    """service, log_errors."""
    sql = store.sql(LOG_ERRORS, logs=LOGS)
    parameters = {"services": list(services), "since": since, "until": until}
    return _frame(store, sql, parameters, {"service": pl.String, "log_errors": pl.Int64})


TOP_ERRORS = f"""
SELECT ServiceName, type, message, sum(n) AS count
FROM (
    SELECT ServiceName, Type AS type, Message AS message, sum(Count) AS n
    FROM $error_minutes
    WHERE {MINUTES_IN_WINDOW} AND {_SERVICES}
    GROUP BY ServiceName, type, message
    UNION ALL
    SELECT ServiceName, {ERROR_TYPE} AS type, {ERROR_SHAPE} AS message, count()
    FROM $traces
    WHERE {SPANS_AT_EDGES} AND {IS_REQUEST} AND {IS_ERROR} AND {_SERVICES}
    GROUP BY ServiceName, type, message
)
GROUP BY ServiceName, type, message
ORDER BY count DESC, type, message
LIMIT {{per_service:UInt32}} BY ServiceName
"""
"""The most frequent error types (exception type and message shape) of failed requests per service."""


def top_errors(
    store: Store, services: Sequence[str], since: datetime, until: datetime, per_service: int = 5
) -> pl.DataFrame:
    """service, type, message, count; most frequent first."""
    sql = _rollup_sql(store, TOP_ERRORS)
    parameters = {**_window(services, since, until), "per_service": per_service}
    schema = {"service": pl.String, "type": pl.String, "message": pl.String, "count": pl.Int64}
    return _frame(store, sql, parameters, schema)


TOP_ENDPOINTS = f"""
SELECT ServiceName, SpanName, sum(requests) AS n, sum(errors) / n, quantilesMerge(0.5, 0.95, 0.99)(duration)[2] / 1e6
FROM ({_RED_PARTS})
GROUP BY ServiceName, SpanName
ORDER BY n DESC, SpanName
LIMIT {{per_service:UInt32}} BY ServiceName
"""
"""The busiest endpoints (span names of requests) per service, with error ratio and p95 (ms)."""


def top_endpoints(
    store: Store, services: Sequence[str], since: datetime, until: datetime, per_service: int = 5
) -> pl.DataFrame:
    """service, name, requests, error_ratio, p95_ms; busiest first."""
    sql = _rollup_sql(store, TOP_ENDPOINTS)
    parameters = {**_window(services, since, until), "per_service": per_service}
    schema = {
        "service": pl.String, "name": pl.String, "requests": pl.Int64, "error_ratio": pl.Float64,
        "p95_ms": pl.Float64,
    }  # fmt: skip
    return _frame(store, sql, parameters, schema)


CURRENT_VERSIONS = f"""
SELECT ServiceName, argMax(Version, LastSeen), argMax(DeploymentId, LastSeen)
FROM $minutes
WHERE {_SERVICES}
GROUP BY ServiceName
"""
"""The version (and deployment.id) each service's telemetry showed last, whatever the window."""


def current_versions(store: Store, services: Sequence[str]) -> pl.DataFrame:
    """service, version, deployment_id: what telemetry showed last."""
    sql = store.sql(CURRENT_VERSIONS, minutes=SERVICE_VERSION_MINUTES)
    schema = {"service": pl.String, "version": pl.String, "deployment_id": pl.String}
    return _frame(store, sql, {"services": list(services)}, schema)


CURRENT_RUN_DEPLOYS = """
SELECT service, argMax(deploy_id, last_seen)
FROM $runs FINAL
WHERE (empty({services:Array(String)}) OR service IN {services:Array(String)})
GROUP BY service
"""
"""The deploy each service's latest run of telemetry stands for."""


def current_run_deploys(store: Store, services: Sequence[str]) -> pl.DataFrame:
    """service, deploy_id of the latest run seen."""
    sql = store.sql(CURRENT_RUN_DEPLOYS, runs=SERVICE_VERSIONS)
    return _frame(store, sql, {"services": list(services)}, {"service": pl.String, "deploy_id": pl.String})


ACTIVE_SERVICES = f"""
SELECT DISTINCT ServiceName FROM $span_minutes
WHERE Minute >= {{since:DateTime64(9, 'UTC')}} AND Minute < {{until:DateTime64(9, 'UTC')}} AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT ServiceName FROM $logs WHERE {IN_WINDOW} AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT service FROM $deployments FINAL
WHERE started_at >= {{since:DateTime64(9, 'UTC')}} AND started_at < {{until:DateTime64(9, 'UTC')}}
UNION DISTINCT
SELECT DISTINCT service FROM $incidents FINAL WHERE status != 'resolved'
"""
"""Services with telemetry or deploys in a window of whole minutes, or an active incident: what the service list
shows. Spans count by their minute in span_minutes (a day of otel_traces' ServiceName column otherwise)."""


def active_services(store: Store, since: datetime, until: datetime) -> list[str]:
    """The services the service list shows for a window of whole minutes, sorted."""
    sql = store.sql(ACTIVE_SERVICES, span_minutes=SPAN_MINUTES, logs=LOGS, deployments=DEPLOYMENTS, incidents=INCIDENTS)
    return sorted(str(row[0]) for row in store.rows(sql, {"since": since, "until": until}))
