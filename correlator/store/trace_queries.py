"""Reads behind the trace view: a trace's spans, its logs, its exemplars, and the deploys its services may have run.

The spans come from spans_by_trace, ordered by TraceId (docs/traces.md; store/schema_trace_view.py says why). The logs
are read in the time range the lookup table gives (otel_traces_trace_id_ts), so partition and min-max pruning
apply before the TraceId text index does; the later reads take theirs from the spans.
Reads return plain columns and leave small conversions (empty to None, picking resource keys) to Python: on a
large store each extra map subscript costs the engine more than the whole map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.store.client import Store
from correlator.store.records import EPOCH
from correlator.store.schema_otel import LOGS, TRACE_ID_TS, TRACES
from correlator.store.schema_platform import DEPLOYMENTS
from correlator.store.schema_trace_view import DEPLOY_KEYS, EXEMPLARS_BY_TRACE, SPANS_BY_TRACE
from correlator.store.telemetry_sql import KIND_OUT, STATUS_OUT

# Log records may be stamped a little off the spans they belong to (other clocks, queued appenders).
LOG_SLACK = timedelta(hours=1)
# A metric point is stamped when it is collected, after the exemplars it carries were recorded: readers
# export every 60 s by default, so points up to 10 minutes after the trace may hold its exemplars.
EXEMPLAR_BEFORE = timedelta(minutes=1)
EXEMPLAR_AFTER = timedelta(minutes=10)

RESOURCE_DEPLOY = "mapFilter((k, v) -> has({deploy_keys:Array(String)}, k), ResourceAttributes)"
"""A row's resource cut down to DEPLOY_KEYS (the engine reads the map once; subscripts would read it per key)."""

DEFAULT_ENVIRONMENT = "production"


def from_ns(ns: int) -> datetime:
    """An aware UTC time from nanoseconds since the epoch (to the microsecond: what datetime holds)."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def _utc(value: datetime) -> datetime:
    # The session runs in UTC; clickhouse-connect hands DateTime values back naive.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _text(value: Any) -> str | None:
    # API.md: absent values are null, never "".
    return str(value) if value else None


@dataclass(frozen=True)
class TraceRange:
    """Where a trace's spans lie: from the first start to the last end."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class ResourceDeploy:
    """What a row's resource says about the deploy that produced it."""

    version: str | None
    deployment_id: str | None
    environment: str

    @classmethod
    def of(cls, resource: dict[str, str]) -> ResourceDeploy:
        # The same rule as telemetry_sql.ENVIRONMENT: the current attribute, then the older one.
        environment = (
            resource.get("deployment.environment.name") or resource.get("deployment.environment") or DEFAULT_ENVIRONMENT
        )
        return cls(_text(resource.get("service.version")), _text(resource.get("deployment.id")), environment)


@dataclass(frozen=True)
class SpanEventRow:
    at: datetime
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class SpanRow:
    """One span as stored, absent texts as None, kind and status in the current spelling."""

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


LOOKUP_RANGE = """
SELECT min(Start), max(End) FROM $lookup WHERE TraceId = {trace_id:String} HAVING count() > 0
"""
"""The seconds of a trace's first and last span start, from the lookup table (SCHEMA.md, otel_traces_trace_id_ts)."""


def trace_range(store: Store, trace_id: str) -> TraceRange | None:
    """Where the lookup table puts a trace's span starts, whole seconds (the last one included); None when it has
    no rows of the trace.

    The spans read and the logs read both bound themselves by it, so that partition and min-max pruning apply
    before the TraceId bloom filters do.
    """
    rows = store.rows(store.sql(LOOKUP_RANGE, lookup=TRACE_ID_TS), {"trace_id": trace_id})
    if not rows:
        return None
    first, last = rows[0]
    return TraceRange(_utc(first), _utc(last) + timedelta(seconds=1))


SPANS = """
SELECT SpanId, ParentSpanId, ServiceName, SpanName, {kind}, toUnixTimestamp64Nano(Timestamp), Duration, {status},
    StatusMessage, SpanAttributes, Events.Timestamp, Events.Name, Events.Attributes, {resource}
FROM {table}
WHERE TraceId = {{trace_id:String}}{within}
ORDER BY Timestamp, SpanId
"""
"""A trace's spans, oldest first."""

_WITHIN = "\n    AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp <= {until:DateTime64(9, 'UTC')}"


def trace_spans(store: Store, trace_id: str) -> list[SpanRow]:
    """A trace's spans from spans_by_trace (docs/traces.md), where they are adjacent rows under the primary key,
    oldest first; none when that copy does not have them (trace_spans_in says when that may be)."""
    sql = SPANS.format(
        table=store.table(SPANS_BY_TRACE), kind=KIND_OUT, status=STATUS_OUT, resource="DeployAttributes", within=""
    )
    return _span_rows(store.rows(sql, {"trace_id": trace_id}))


def trace_spans_in(store: Store, trace_id: str, within: TraceRange) -> list[SpanRow]:
    """A trace's spans from otel_traces in the range the lookup table gives (trace_range), oldest first.

    For a trace spans_by_trace does not hold: spans stored on a cluster before migration 5, which copies what
    otel_traces held on one node only (docs/cluster.md), or a store whose operator dropped that copy's view.
    """
    sql = SPANS.format(
        table=store.table(TRACES), kind=KIND_OUT, status=STATUS_OUT, resource=RESOURCE_DEPLOY, within=_WITHIN
    )
    parameters = {"trace_id": trace_id, "since": within.since, "until": within.until, "deploy_keys": list(DEPLOY_KEYS)}
    return _span_rows(store.rows(sql, parameters))


def _span_rows(rows: list[tuple[Any, ...]]) -> list[SpanRow]:
    spans = []
    for row in rows:
        span_id, parent, service, name, kind, start_ns, duration_ns, status, message, attributes = row[:10]
        event_times, event_names, event_attributes, resource = row[10:]
        events = zip(event_times, event_names, event_attributes, strict=True)
        spans.append(
            SpanRow(
                span_id=str(span_id),
                parent_span_id=_text(parent),
                service=_text(service),
                name=_text(name),
                kind=str(kind),
                start_ns=int(start_ns),
                duration_ns=int(duration_ns),
                status_code=str(status),
                status_message=_text(message),
                attributes=attributes,
                events=tuple(SpanEventRow(_utc(at), str(n), a) for at, n, a in events),
                resource=ResourceDeploy.of(resource),
            )
        )
    return spans


LOGS_OF_TRACE = """
SELECT toUnixTimestamp64Nano(Timestamp), ServiceName, SeverityText, SeverityNumber, Body, SpanId, LogAttributes
FROM $logs
WHERE TraceId = {trace_id:String}
    AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp <= {until:DateTime64(9, 'UTC')}
ORDER BY Timestamp, SpanId
SETTINGS max_threads = 1
"""
"""The log records of a trace in a range, oldest first. Without their resources: the spans' resources say what
each service ran, and reading a map column costs a third of this read (LOG_RESOURCES reads them when needed).
One thread: the read runs beside the spans read, whose two threads then have the cores (the view's p90 4 to 11
ms lower, alternating with two threads on a 10 M-span store; the spans read with one thread was 20 ms slower)."""


def _log_range(trace_id: str, spans: TraceRange) -> dict[str, Any]:
    return {"trace_id": trace_id, "since": spans.since - LOG_SLACK, "until": spans.until + LOG_SLACK}


def trace_logs(store: Store, trace_id: str, spans: TraceRange) -> list[LogRow]:
    """A trace's log records within LOG_SLACK of its span starts as the lookup table gives them, oldest first.

    The range comes from the lookup table, not from the spans read, so this read can run beside that one.
    """
    return [
        LogRow(
            timestamp_ns=int(ns),
            service=_text(service),
            severity_text=_text(severity_text),
            severity_number=int(severity_number) or None,
            body=_text(body),
            span_id=_text(span_id),
            attributes=attributes,
        )
        for ns, service, severity_text, severity_number, body, span_id, attributes in store.rows(
            store.sql(LOGS_OF_TRACE, logs=LOGS), _log_range(trace_id, spans)
        )
    ]


LOG_RESOURCES = (
    "SELECT ServiceName, "
    + RESOURCE_DEPLOY
    + """ AS resource, min(toUnixTimestamp64Nano(Timestamp))
FROM $logs
WHERE TraceId = {trace_id:String} AND ServiceName IN {services:Array(String)}
    AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp <= {until:DateTime64(9, 'UTC')}
GROUP BY ServiceName, resource
"""
)
"""What the log records of some services of a trace say about their deploys, with when each resource first shows."""


def trace_log_resources(
    store: Store, trace_id: str, spans: TraceRange, services: Sequence[str]
) -> list[tuple[str, ResourceDeploy, int]]:
    """(service, resource, first nanosecond) of the log records of some services of a trace: for the services
    that only logged in it, whose spans cannot say what they ran."""
    if not services:
        return []
    parameters = {**_log_range(trace_id, spans), "services": list(services), "deploy_keys": list(DEPLOY_KEYS)}
    return [
        (str(service), ResourceDeploy.of(resource), int(first_ns))
        for service, resource, first_ns in store.rows(store.sql(LOG_RESOURCES, logs=LOGS), parameters)
    ]


EXEMPLARS = """
SELECT MetricName, ServiceName, Value, ExemplarTimeUnix, SpanId
FROM $exemplars
WHERE TraceId = {trace_id:String} AND ServiceName IN {services:Array(String)}
    AND TimeUnix >= {since:DateTime('UTC')} AND TimeUnix <= {until:DateTime('UTC')}
"""
"""The exemplars of a trace recorded on some services' metric points stamped in a range (docs/traces.md,
exemplars_by_trace: one row per exemplar of every metric type that has them)."""


def trace_exemplars(store: Store, trace_id: str, spans: TraceRange, services: Sequence[str]) -> list[ExemplarRow]:
    """The exemplars of a trace on its services' metric points stamped near it, oldest first, each once.

    Only the trace's own services: an exemplar is recorded by the service whose span was active. A cumulative
    point may repeat an exemplar on every export.
    """
    if not services:
        return []
    parameters = {
        "trace_id": trace_id,
        "services": list(services),
        "since": spans.since - EXEMPLAR_BEFORE,
        "until": spans.until + EXEMPLAR_AFTER,
    }
    found: dict[ExemplarRow, None] = {}
    sql = store.sql(EXEMPLARS, exemplars=EXEMPLARS_BY_TRACE)
    for metric, service, value, at, span_id in store.rows(sql, parameters):
        found.setdefault(ExemplarRow(str(metric), _text(service), float(value), _utc(at), _span_id(span_id)))
    return sorted(found, key=lambda e: (e.at, e.metric, e.service or "", e.value))


def _span_id(value: Any) -> str | None:
    # Exemplar ids are stored as hex even when zero (SCHEMA.md): a zero id is no span.
    text = str(value)
    return text if text.strip("0") else None


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
