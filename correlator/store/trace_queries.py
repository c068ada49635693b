"""Reads behind the trace view: a trace's time range, its spans, its logs, its exemplars and candidate deploys.

Every read but the first is bounded by the time range the lookup table gives, so partition and primary-key
pruning apply before the TraceId indexes do (SCHEMA.md, otel_traces_trace_id_ts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.store.client import Store
from correlator.store.schema_otel import LOGS, METRIC_TABLES, TRACE_ID_TS, TRACES
from correlator.store.schema_platform import DEPLOYMENTS
from correlator.store.telemetry_sql import KIND_OUT, STATUS_OUT

# Where telemetry says it ran: the current attribute name first, the older spelling, then the default.
ENVIRONMENT = (
    "multiIf(ResourceAttributes['deployment.environment.name'] != '', "
    "ResourceAttributes['deployment.environment.name'], "
    "ResourceAttributes['deployment.environment'] != '', ResourceAttributes['deployment.environment'], "
    "'production')"
)
"""A row's deploy environment, as the service-version views derive it."""

RESOURCE_DEPLOY = (
    f"nullIf(ResourceAttributes['service.version'], ''), nullIf(ResourceAttributes['deployment.id'], ''), {ENVIRONMENT}"
)
"""The version, deployment.id and environment a row's resource names (null when absent)."""

# The lookup stores whole seconds of span starts: the last span may start up to a second after `End`.
LOOKUP_SLACK = timedelta(seconds=1)
# Log records may be stamped a little off the spans they belong to (other clocks, queued appenders).
LOG_SLACK = timedelta(hours=1)
# A metric point is stamped when it is collected, after the exemplars it carries were recorded: readers
# export every 60 s by default, so points up to 10 minutes after the trace may hold its exemplars.
EXEMPLAR_BEFORE = timedelta(minutes=1)
EXEMPLAR_AFTER = timedelta(minutes=10)
# Summaries carry no exemplars.
EXEMPLAR_TABLES = tuple(METRIC_TABLES[kind] for kind in ("sum", "gauge", "histogram", "exponential_histogram"))

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(ns: int) -> datetime:
    """An aware UTC time from nanoseconds since the epoch (to the microsecond: what datetime holds)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _utc(value: datetime) -> datetime:
    # The session runs in UTC; clickhouse-connect hands DateTime values back naive.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class TraceRange:
    """Where a trace's spans lie: [since, until], from the lookup table (whole seconds, widened)."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class ResourceDeploy:
    """What a row's resource says about the deploy that produced it."""

    version: str | None
    deployment_id: str | None
    environment: str


@dataclass(frozen=True)
class SpanEventRow:
    at_ns: int
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class SpanRow:
    """One span as stored, ids and absent texts already null, kind and status in the current spelling."""

    span_id: str
    parent_span_id: str | None
    service: str | None
    name: str | None
    kind: str
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str | None
    attributes: dict[str, str]
    events: tuple[SpanEventRow, ...]
    resource: ResourceDeploy


@dataclass(frozen=True)
class LogRow:
    """One log record of a trace."""

    timestamp_ns: int
    service: str | None
    severity_text: str | None
    severity_number: int | None
    body: str | None
    span_id: str | None
    attributes: dict[str, str]
    resource: ResourceDeploy


@dataclass(frozen=True)
class ExemplarRow:
    """One exemplar of a trace on a metric point."""

    metric: str
    service: str | None
    value: float
    at: datetime
    span_id: str | None


@dataclass(frozen=True)
class DeployCandidate:
    """A stored deploy that may be the one a service of a trace ran."""

    deploy_id: str
    service: str
    environment: str
    version: str
    started_at: datetime


TRACE_RANGE = "SELECT count(), min(Start), max(End) FROM {lookup} WHERE TraceId = {{trace_id:String}}"
"""Where a trace lies in time: its lookup rows (one per insert block that held its spans)."""


def trace_range(store: Store, trace_id: str) -> TraceRange | None:
    """The time range of a trace's spans, or None when the store has no span of it."""
    sql = TRACE_RANGE.format(lookup=store.table(TRACE_ID_TS))
    count, start, end = store.rows(sql, {"trace_id": trace_id})[0]
    if not count:
        return None
    return TraceRange(_utc(start), _utc(end) + LOOKUP_SLACK)


SPANS = """
SELECT SpanId, nullIf(ParentSpanId, ''), nullIf(ServiceName, ''), nullIf(SpanName, ''), {kind},
    toUnixTimestamp64Nano(Timestamp), Duration, {status}, nullIf(StatusMessage, ''), SpanAttributes,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes, {resource}
FROM {traces}
WHERE TraceId = {{trace_id:String}}
    AND Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp <= {{until:DateTime64(9, 'UTC')}}
ORDER BY Timestamp, SpanId
"""
"""The spans of a trace within its range, oldest first."""


def trace_spans(store: Store, trace_id: str, within: TraceRange) -> list[SpanRow]:
    """A trace's spans, oldest first."""
    sql = SPANS.format(traces=store.table(TRACES), kind=KIND_OUT, status=STATUS_OUT, resource=RESOURCE_DEPLOY)
    rows = store.rows(sql, {"trace_id": trace_id, "since": within.since, "until": within.until})
    return [_span_row(*row) for row in rows]


def _span_row(
    span_id: str,
    parent: str | None,
    service: str | None,
    name: str | None,
    kind: str,
    start_ns: int,
    duration_ns: int,
    status: str,
    message: str | None,
    attributes: dict[str, str],
    event_times: list[int],
    event_names: list[str],
    event_attributes: list[dict[str, str]],
    version: str | None,
    deployment_id: str | None,
    environment: str,
) -> SpanRow:
    events = zip(event_times, event_names, event_attributes, strict=True)
    return SpanRow(
        span_id=str(span_id),
        parent_span_id=parent,
        service=service,
        name=name,
        kind=str(kind),
        start_ns=int(start_ns),
        duration_ns=int(duration_ns),
        status_code=str(status),
        status_message=message,
        attributes=dict(attributes),
        events=tuple(SpanEventRow(int(at), str(n), dict(a)) for at, n, a in events),
        resource=ResourceDeploy(version, deployment_id, str(environment)),
    )


LOGS_OF_TRACE = """
SELECT toUnixTimestamp64Nano(Timestamp), nullIf(ServiceName, ''), nullIf(SeverityText, ''),
    nullIf(SeverityNumber, 0), nullIf(Body, ''), nullIf(SpanId, ''), LogAttributes, {resource}
FROM {logs}
WHERE TraceId = {{trace_id:String}}
    AND Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp <= {{until:DateTime64(9, 'UTC')}}
ORDER BY Timestamp, SpanId
"""
"""The log records of a trace within its range widened by LOG_SLACK, oldest first."""


def trace_logs(store: Store, trace_id: str, within: TraceRange) -> list[LogRow]:
    """A trace's log records, oldest first."""
    sql = LOGS_OF_TRACE.format(logs=store.table(LOGS), resource=RESOURCE_DEPLOY)
    parameters = {"trace_id": trace_id, "since": within.since - LOG_SLACK, "until": within.until + LOG_SLACK}
    return [_log_row(*row) for row in store.rows(sql, parameters)]


def _log_row(
    timestamp_ns: int,
    service: str | None,
    severity_text: str | None,
    severity_number: int | None,
    body: str | None,
    span_id: str | None,
    attributes: dict[str, str],
    version: str | None,
    deployment_id: str | None,
    environment: str,
) -> LogRow:
    return LogRow(
        timestamp_ns=int(timestamp_ns),
        service=service,
        severity_text=severity_text,
        severity_number=None if severity_number is None else int(severity_number),
        body=body,
        span_id=span_id,
        attributes=dict(attributes),
        resource=ResourceDeploy(version, deployment_id, str(environment)),
    )


_EXEMPLARS_OF_TABLE = """
SELECT MetricName, ServiceName, x.1, x.2, x.3
FROM {table}
ARRAY JOIN arrayFilter(x -> x.4 = {{trace_id:String}},
    arrayZip(Exemplars.Value, Exemplars.TimeUnix, Exemplars.SpanId, Exemplars.TraceId)) AS x
WHERE ServiceName IN {{services:Array(String)}}
    AND TimeUnix >= {{since:DateTime('UTC')}} AND TimeUnix <= {{until:DateTime('UTC')}}
    AND has(Exemplars.TraceId, {{trace_id:String}})
"""


def _exemplars_sql(store: Store) -> str:
    parts = [_EXEMPLARS_OF_TABLE.format(table=store.table(name)) for name in EXEMPLAR_TABLES]
    # A cumulative point may carry the same exemplar on every export: one row per exemplar.
    return "SELECT DISTINCT * FROM (" + " UNION ALL ".join(parts) + ") ORDER BY 4, 1, 2, 3"


def trace_exemplars(store: Store, trace_id: str, within: TraceRange, services: Sequence[str]) -> list[ExemplarRow]:
    """Exemplars naming the trace, on points of its services' metrics stamped near it, oldest first.

    Only the trace's own services are read: an exemplar is recorded by the service whose span was active,
    and ServiceName leads the metric tables' sort key, so this keeps the scan small.
    """
    if not services:
        return []
    parameters = {
        "trace_id": trace_id,
        "services": list(services),
        "since": within.since - EXEMPLAR_BEFORE,
        "until": within.until + EXEMPLAR_AFTER,
    }
    return [
        ExemplarRow(str(metric), str(service) or None, float(value), _utc(at), _span_id(span_id))
        for metric, service, value, at, span_id in store.rows(_exemplars_sql(store), parameters)
    ]


def _span_id(value: Any) -> str | None:
    # Exemplar ids are stored as hex even when zero (SCHEMA.md): a zero id is no span.
    text = str(value)
    return None if not text or not text.strip("0") else text


DEPLOY_CANDIDATES = """
SELECT deploy_id, service, environment, version, started_at
FROM {deployments} FINAL
WHERE deploy_id IN {{ids:Array(String)}}
    OR ((service, environment, version) IN {{runs:Array(Tuple(String, String, String))}}
        AND started_at <= {{until:DateTime64(9, 'UTC')}})
ORDER BY started_at, deploy_id
"""
"""Deploys named by id, and deploys of (service, environment, version) started by a time, oldest first."""


def deploy_candidates(
    store: Store, deploy_ids: Sequence[str], runs: Sequence[tuple[str, str, str]], until: datetime
) -> list[DeployCandidate]:
    """Stored deploys that may be what a trace's services ran: by id, or by (service, environment, version)."""
    if not deploy_ids and not runs:
        return []
    sql = DEPLOY_CANDIDATES.format(deployments=store.table(DEPLOYMENTS))
    parameters = {"ids": list(deploy_ids), "runs": [tuple(run) for run in runs], "until": until}
    return [
        DeployCandidate(str(deploy_id), str(service), str(environment), str(version), _utc(started_at))
        for deploy_id, service, environment, version, started_at in store.rows(sql, parameters)
    ]
