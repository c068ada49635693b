"""Queries behind service health: RED per service, error logs, baselines, top errors and endpoints, versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from correlator.store.client import Store
from correlator.store.schema_otel import LOGS, TRACES
from correlator.store.schema_platform import DEPLOYMENTS, INCIDENTS, SERVICE_VERSION_MINUTES, SERVICE_VERSIONS
from correlator.store.telemetry_sql import ERROR_SHAPE, ERROR_TYPE, IN_WINDOW, IS_ERROR, IS_ERROR_LOG, IS_REQUEST

# An empty list of services means every service.
_SERVICES = "(empty({services:Array(String)}) OR has({services:Array(String)}, ServiceName))"


def _frame(store: Store, sql: str, parameters: Mapping[str, object], schema: Mapping[str, Any]) -> pl.DataFrame:
    rows = store.rows(sql, parameters)
    return pl.DataFrame(rows, schema=list(schema.items()), orient="row")


def _window(services: Sequence[str], since: datetime, until: datetime) -> dict[str, object]:
    return {"services": list(services), "since": since, "until": until}


RED = f"""
SELECT ServiceName, count(), countIf({IS_ERROR}), quantiles(0.5, 0.95, 0.99)(Duration)
FROM $traces
WHERE {IN_WINDOW} AND {IS_REQUEST} AND {_SERVICES}
GROUP BY ServiceName
"""
"""Requests, failed requests and duration percentiles (ns) per service in a window."""


_RED_SCHEMA = {
    "service": pl.String, "requests": pl.Int64, "errors": pl.Int64,
    "p50_ms": pl.Float64, "p95_ms": pl.Float64, "p99_ms": pl.Float64,
}  # fmt: skip


def red(store: Store, services: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
    """service, requests, errors, p50_ms, p95_ms, p99_ms per service with requests in the window."""
    rows = store.rows(store.sql(RED, traces=TRACES), _window(services, since, until))
    return pl.DataFrame(
        [(s, int(n), int(e), q[0] / 1e6, q[1] / 1e6, q[2] / 1e6) for s, n, e, q in rows],
        schema=list(_RED_SCHEMA.items()),
        orient="row",
    )


BASELINE_P95 = f"""
SELECT ServiceName, quantile(0.95)(Duration) / 1e6
FROM $traces
WHERE {IN_WINDOW} AND {IS_REQUEST} AND {_SERVICES}
GROUP BY ServiceName
"""
"""Each service's p95 (ms) over a baseline window (the 24 hours before the window looked at)."""


def baseline_p95(store: Store, services: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
    """service, baseline_p95_ms."""
    sql = store.sql(BASELINE_P95, traces=TRACES)
    return _frame(store, sql, _window(services, since, until), {"service": pl.String, "baseline_p95_ms": pl.Float64})


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
    return _frame(store, sql, _window(services, since, until), {"service": pl.String, "log_errors": pl.Int64})


TOP_ERRORS = f"""
SELECT ServiceName, {ERROR_TYPE} AS type, {ERROR_SHAPE} AS message, count() AS count
FROM $traces
WHERE {IN_WINDOW} AND {IS_REQUEST} AND {IS_ERROR} AND {_SERVICES}
GROUP BY ServiceName, type, message
ORDER BY count DESC, type, message
LIMIT {{per_service:UInt32}} BY ServiceName
"""
"""The most frequent error types (exception type and message shape) of failed requests per service."""


def top_errors(
    store: Store, services: Sequence[str], since: datetime, until: datetime, per_service: int = 5
) -> pl.DataFrame:
    """service, type, message, count; most frequent first."""
    sql = store.sql(TOP_ERRORS, traces=TRACES)
    parameters = {**_window(services, since, until), "per_service": per_service}
    schema = {"service": pl.String, "type": pl.String, "message": pl.String, "count": pl.Int64}
    return _frame(store, sql, parameters, schema)


TOP_ENDPOINTS = f"""
SELECT ServiceName, SpanName, count() AS requests, countIf({IS_ERROR}) / count(), quantile(0.95)(Duration) / 1e6
FROM $traces
WHERE {IN_WINDOW} AND {IS_REQUEST} AND {_SERVICES}
GROUP BY ServiceName, SpanName
ORDER BY requests DESC, SpanName
LIMIT {{per_service:UInt32}} BY ServiceName
"""
"""The busiest endpoints (span names of requests) per service, with error ratio and p95 (ms)."""


def top_endpoints(
    store: Store, services: Sequence[str], since: datetime, until: datetime, per_service: int = 5
) -> pl.DataFrame:
    """service, name, requests, error_ratio, p95_ms; busiest first."""
    sql = store.sql(TOP_ENDPOINTS, traces=TRACES)
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
WHERE (empty({services:Array(String)}) OR has({services:Array(String)}, service))
GROUP BY service
"""
"""The deploy each service's latest run of telemetry stands for."""


def current_run_deploys(store: Store, services: Sequence[str]) -> pl.DataFrame:
    """service, deploy_id of the latest run seen."""
    sql = store.sql(CURRENT_RUN_DEPLOYS, runs=SERVICE_VERSIONS)
    return _frame(store, sql, {"services": list(services)}, {"service": pl.String, "deploy_id": pl.String})


ACTIVE_SERVICES = f"""
SELECT DISTINCT ServiceName FROM $traces WHERE {IN_WINDOW} AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT ServiceName FROM $logs WHERE {IN_WINDOW} AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT service FROM $deployments FINAL
WHERE started_at >= {{since:DateTime64(9, 'UTC')}} AND started_at < {{until:DateTime64(9, 'UTC')}}
UNION DISTINCT
SELECT DISTINCT service FROM $incidents FINAL WHERE status != 'resolved'
"""
"""Services with telemetry or deploys in the window, or an active incident: what the service list shows."""


def active_services(store: Store, since: datetime, until: datetime) -> list[str]:
    """The services the service list shows for a window, sorted."""
    sql = store.sql(ACTIVE_SERVICES, traces=TRACES, logs=LOGS, deployments=DEPLOYMENTS, incidents=INCIDENTS)
    return sorted(str(row[0]) for row in store.rows(sql, {"since": since, "until": until}))
