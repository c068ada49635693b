"""Queries behind the service graph: calls seen in spans, and mesh counters turned into per-edge increases.

Each query answers one question over a half-open window [since, until) and returns a small frame per edge;
the heavy work (the span self-join, per-series counter deltas) stays in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from correlator.store.client import Store
from correlator.store.schema_otel import METRIC_TABLES, TRACES
from correlator.store.telemetry_sql import IS_CLIENT_CALL, IS_ERROR, IS_REQUEST

_SINCE = "{since:DateTime64(9, 'UTC')}"
_UNTIL = "{until:DateTime64(9, 'UTC')}"
# Span sides of a call are looked for a little beyond the window: a callee's span may start after `until`
# (or, with clock skew, before its caller's), and must still be recognised as the answer to a call.
_NEAR_SINCE = "{near_since:DateTime64(9, 'UTC')}"
_NEAR_UNTIL = "{near_until:DateTime64(9, 'UTC')}"
_LOOKBACK = "{lookback:DateTime64(9, 'UTC')}"


def span_calls_sql(traces: str) -> str:
    """Requests between instrumented services: server (or consumer) spans started in the window whose parent is a
    client (or producer) span of another service; failures and p95 (ms) are the callee's."""
    return f"""
SELECT calls.ServiceName AS source, served.ServiceName AS destination,
       count(), countIf(served.failed), quantile(0.95)(served.Duration) / 1e6
FROM (
    SELECT TraceId, ParentSpanId, ServiceName, Duration, {IS_ERROR} AS failed
    FROM {traces}
    WHERE Timestamp >= {_SINCE} AND Timestamp < {_UNTIL} AND {IS_REQUEST} AND ParentSpanId != ''
) AS served
INNER JOIN (
    SELECT TraceId, SpanId, ServiceName
    FROM {traces}
    WHERE Timestamp >= {_NEAR_SINCE} AND Timestamp < {_NEAR_UNTIL} AND {IS_CLIENT_CALL}
) AS calls ON served.TraceId = calls.TraceId AND served.ParentSpanId = calls.SpanId
WHERE calls.ServiceName != served.ServiceName AND calls.ServiceName != '' AND served.ServiceName != ''
GROUP BY source, destination
"""


PEER_NAME = (
    "multiIf(SpanAttributes['peer.service'] != '', SpanAttributes['peer.service'],"
    " SpanAttributes['server.address'] != '', SpanAttributes['server.address'],"
    " SpanAttributes['net.peer.name'])"
)
"""Whom a client span says it called: `peer.service`, else `server.address` (legacy `net.peer.name`)."""


def unanswered_calls_sql(traces: str) -> str:
    """Calls to uninstrumented callees: client (or producer) spans started in the window that name a peer and have
    no server (or consumer) child; failures and p95 (ms) are the caller's own view of the call."""
    return f"""
SELECT ServiceName AS source, peer AS destination, count(), countIf(failed), quantile(0.95)(Duration) / 1e6
FROM (
    SELECT TraceId, SpanId, ServiceName, Duration, {PEER_NAME} AS peer, {IS_ERROR} AS failed
    FROM {traces}
    WHERE Timestamp >= {_SINCE} AND Timestamp < {_UNTIL} AND {IS_CLIENT_CALL}
)
WHERE peer != '' AND peer != ServiceName AND ServiceName != ''
  AND (TraceId, SpanId) NOT IN (
    SELECT TraceId, ParentSpanId
    FROM {traces}
    WHERE Timestamp >= {_NEAR_SINCE} AND Timestamp < {_NEAR_UNTIL} AND {IS_REQUEST} AND ParentSpanId != ''
  )
GROUP BY source, destination
"""


def serving_services_sql(traces: str) -> str:
    """Services that served at least one request (a server or consumer span) in the window."""
    return f"""
SELECT DISTINCT ServiceName
FROM {traces}
WHERE Timestamp >= {_SINCE} AND Timestamp < {_UNTIL} AND {IS_REQUEST} AND ServiceName != ''
ORDER BY ServiceName
"""


# The mesh metrics and the labels that make them edges (API.md, topology). Istio names workloads; when a
# workload label is empty or `unknown`, the canonical-service label names the side instead.
ISTIO_REQUESTS = "istio_requests_total"
ISTIO_DURATION = "istio_request_duration_milliseconds"
LINKERD_RESPONSES = "response_total"
LINKERD_LATENCY = "response_latency_ms"


def _istio_name(side: str) -> str:
    workload = f"Attributes['{side}_workload']"
    return f"if({workload} IN ('', 'unknown'), Attributes['{side}_canonical_service'], {workload})"


def _mesh_columns(istio_metric: str) -> str:
    """mesh, source and destination of a mesh series (Istio's destination reports, Linkerd's outbound ones)."""
    is_istio = f"MetricName = '{istio_metric}'"
    return (
        f"if({is_istio}, 'istio', 'linkerd') AS mesh,"
        f" if({is_istio}, {_istio_name('source')}, Attributes['deployment']) AS source,"
        f" if({is_istio}, {_istio_name('destination')}, Attributes['dst_deployment']) AS destination"
    )


def _mesh_series(istio_metric: str, linkerd_metric: str) -> str:
    return (
        f"((MetricName = '{istio_metric}' AND Attributes['reporter'] = 'destination')"
        f" OR (MetricName = '{linkerd_metric}' AND Attributes['direction'] = 'outbound'))"
    )


# A series is its resource attributes plus its attributes (replicas differ only in the resource). Its points
# from the lookback before the window up to `until` are sorted by time; each point in the window adds its
# increase over the one before it (its whole value after a drop: a reset), so a point just before the window
# is the baseline and a series without one starts counting at its first point. Delta points just add up.
_POINTS_IN = "arraySort(p -> p.1, groupArray(({point})))"
_CUMULATIVE_INCREASE = (
    "arraySum(arrayMap((cur, prev) -> if(cur.1 >= {since:DateTime64(9, 'UTC')},"
    " if(cur.2 >= prev.2, cur.2 - prev.2, cur.2), 0), arrayPopFront(points), arrayPopBack(points)))"
)
_DELTA_SUM = "arraySum(arrayMap(p -> if(p.1 >= {since:DateTime64(9, 'UTC')}, p.2, 0), points))"


def mesh_requests_sql(sums: str) -> str:
    """Requests the meshes counted in the window per (mesh, source, destination, failed, mutual TLS): the increase
    of Istio's `istio_requests_total` (reporter destination) and Linkerd's outbound `response_total`, summed
    over series."""
    return f"""
SELECT mesh, source, destination, failed, secure, sum(increase) AS requests
FROM (
    SELECT {_mesh_columns(ISTIO_REQUESTS)},
           if(mesh = 'istio', startsWith(Attributes['response_code'], '5'),
              Attributes['classification'] = 'failure') AS failed,
           if(mesh = 'istio', Attributes['connection_security_policy'] = 'mutual_tls',
              Attributes['tls'] = 'true') AS secure,
           if(temporality = 1, {_DELTA_SUM}, {_CUMULATIVE_INCREASE}) AS increase
    FROM (
        SELECT MetricName, Attributes, AggregationTemporality AS temporality,
               {_POINTS_IN.format(point="TimeUnix, Value")} AS points
        FROM {sums}
        WHERE TimeUnix >= {_LOOKBACK} AND TimeUnix < {_UNTIL}
          AND {_mesh_series(ISTIO_REQUESTS, LINKERD_RESPONSES)}
        GROUP BY MetricName, ResourceAttributes, Attributes, AggregationTemporality
    )
)
WHERE source NOT IN ('', 'unknown') AND destination NOT IN ('', 'unknown')
GROUP BY mesh, source, destination, failed, secure
HAVING requests > 0
"""


# The same walk over histogram points, bucket by bucket; a drop of the count or of any bucket is a reset.
_BUCKETS_AFTER = "arrayResize(prev.3, length(cur.3))"
_CUMULATIVE_BUCKETS = (
    "arrayReduce('sumForEach', arrayMap((cur, prev) -> if(cur.1 < {since:DateTime64(9, 'UTC')}, [],"
    f" if(cur.2 >= prev.2 AND NOT arrayExists((c, p) -> c < p, cur.3, {_BUCKETS_AFTER}),"
    f" arrayMap((c, p) -> c - p, cur.3, {_BUCKETS_AFTER}), arrayMap(c -> toInt64(c), cur.3))),"
    " arrayPopFront(points), arrayPopBack(points)))"
)
_DELTA_BUCKETS = (
    "arrayReduce('sumForEach', arrayMap(p -> if(p.1 >= {since:DateTime64(9, 'UTC')},"
    " arrayMap(c -> toInt64(c), p.3), []), points))"
)


def mesh_latency_sql(histograms: str) -> str:
    """Latency observations the meshes made in the window per (mesh, source, destination, bucket bounds): the
    bucket increases of `istio_request_duration_milliseconds` and Linkerd's outbound `response_latency_ms`."""
    return f"""
SELECT mesh, source, destination, bounds, sumForEach(series_buckets)
FROM (
    SELECT {_mesh_columns(ISTIO_DURATION)}, bounds,
           if(temporality = 1, {_DELTA_BUCKETS}, {_CUMULATIVE_BUCKETS}) AS series_buckets
    FROM (
        SELECT MetricName, Attributes, ExplicitBounds AS bounds, AggregationTemporality AS temporality,
               {_POINTS_IN.format(point="TimeUnix, Count, BucketCounts")} AS points
        FROM {histograms}
        WHERE TimeUnix >= {_LOOKBACK} AND TimeUnix < {_UNTIL}
          AND {_mesh_series(ISTIO_DURATION, LINKERD_LATENCY)}
        GROUP BY MetricName, ResourceAttributes, Attributes, ExplicitBounds, AggregationTemporality
    )
)
WHERE source NOT IN ('', 'unknown') AND destination NOT IN ('', 'unknown') AND arraySum(series_buckets) > 0
GROUP BY mesh, source, destination, bounds
"""


def _frame(store: Store, sql: str, parameters: Mapping[str, Any], schema: Mapping[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(store.rows(sql, parameters), schema=list(schema.items()), orient="row")


_CALL_SCHEMA = {
    "source": pl.String, "destination": pl.String, "requests": pl.Int64, "errors": pl.Int64, "p95_ms": pl.Float64,
}  # fmt: skip


def _span_window(since: datetime, until: datetime, slack: timedelta) -> dict[str, datetime]:
    return {"since": since, "until": until, "near_since": since - slack, "near_until": until + slack}


def span_calls(store: Store, since: datetime, until: datetime, *, slack: timedelta) -> pl.DataFrame:
    """source, destination, requests, errors, p95_ms of calls between instrumented services (span_calls_sql)."""
    sql = span_calls_sql(store.table(TRACES))
    return _frame(store, sql, _span_window(since, until, slack), _CALL_SCHEMA)


def unanswered_calls(store: Store, since: datetime, until: datetime, *, slack: timedelta) -> pl.DataFrame:
    """source, destination, requests, errors, p95_ms of calls to uninstrumented callees (unanswered_calls_sql)."""
    sql = unanswered_calls_sql(store.table(TRACES))
    return _frame(store, sql, _span_window(since, until, slack), _CALL_SCHEMA)


def serving_services(store: Store, since: datetime, until: datetime) -> list[str]:
    """Services with server or consumer spans in the window, by name (serving_services_sql)."""
    sql = serving_services_sql(store.table(TRACES))
    return [str(name) for (name,) in store.rows(sql, {"since": since, "until": until})]


def mesh_requests(store: Store, since: datetime, until: datetime, *, lookback: timedelta) -> pl.DataFrame:
    """mesh, source, destination, failed, secure, requests from the mesh counters (mesh_requests_sql).

    `lookback` is how far before the window a series' baseline point may lie (a few scrape intervals).
    """
    sql = mesh_requests_sql(store.table(METRIC_TABLES["sum"]))
    parameters = {"since": since, "until": until, "lookback": since - lookback}
    schema = {
        "mesh": pl.String, "source": pl.String, "destination": pl.String,
        "failed": pl.Boolean, "secure": pl.Boolean, "requests": pl.Float64,
    }  # fmt: skip
    return _frame(store, sql, parameters, schema)


def mesh_latency(store: Store, since: datetime, until: datetime, *, lookback: timedelta) -> pl.DataFrame:
    """mesh, source, destination, bounds, buckets from the mesh latency histograms (mesh_latency_sql)."""
    sql = mesh_latency_sql(store.table(METRIC_TABLES["histogram"]))
    parameters = {"since": since, "until": until, "lookback": since - lookback}
    schema = {
        "mesh": pl.String, "source": pl.String, "destination": pl.String,
        "bounds": pl.List(pl.Float64), "buckets": pl.List(pl.Int64),
    }  # fmt: skip
    return _frame(store, sql, parameters, schema)
