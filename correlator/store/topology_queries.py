"""Queries behind the service graph: calls seen in spans, and mesh counters turned into per-edge increases.

Each query answers one question over a half-open window [since, until) and returns a small frame per edge;
the heavy work (the span self-join, per-series counter deltas) stays in the engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from correlator.store.client import Store
from correlator.store.schema_otel import METRIC_TABLES
from correlator.store.schema_rollups import (
    CALL_SPANS,
    EDGE_MINUTE_RUNS,
    EDGE_MINUTES,
    SERVICE_MINUTES,
    SPAN_MINUTES,
)

_SINCE = "{since:DateTime64(9, 'UTC')}"
_UNTIL = "{until:DateTime64(9, 'UTC')}"
_LOOKBACK = "{lookback:DateTime64(9, 'UTC')}"
_LIVE_SINCE = "{live_since:DateTime64(9, 'UTC')}"
# The other side of a call is looked for a little around the minute the call belongs to: a callee's span may start
# after its caller's minute (or, with clock skew, before it), and must still be recognised as the answer.
_SLACK = "toIntervalSecond({slack_s:UInt32})"
_NEAR = f"minute - {_SLACK}"
_NEAR_END = f"minute + toIntervalMinute(1) + {_SLACK}"


def span_edge_minutes_sql(calls: str) -> str:
    """The span witness per minute of [since, until) (whole minutes) from call_spans: minute, source, destination,
    answered, requests, errors and a quantile(0.95) state of durations (ns).

    Answered (1): a server (or consumer) span started in the minute whose parent is a client (or producer) span of
    another service started within the slack of that minute; failures and durations are the callee's. Unanswered
    (0): a client span started in the minute that names a peer and has no server child started within the slack
    of the minute; failures and durations are the caller's own view of the call. The two sides meet on the 64-bit
    hash of (trace id, client span id): two calls collide in a window of a million with odds near 1 in 30 million.
    """
    return f"""
SELECT minute, calls.ServiceName AS source, served.ServiceName AS destination, toUInt8(1) AS answered,
       count() AS requests, countIf(served.Failed) AS errors, quantileState(0.95)(served.Duration) AS duration
FROM (
    SELECT Call, ServiceName, Failed, Duration, toStartOfMinute(Timestamp) AS minute
    FROM {calls}
    WHERE Timestamp >= {_SINCE} AND Timestamp < {_UNTIL} AND Served = 1
) AS served
INNER JOIN (
    SELECT Call, ServiceName, Timestamp
    FROM {calls}
    WHERE Timestamp >= {_SINCE} - {_SLACK} AND Timestamp < {_UNTIL} + {_SLACK} AND Served = 0
) AS calls ON served.Call = calls.Call
WHERE calls.ServiceName != served.ServiceName AND calls.Timestamp >= {_NEAR} AND calls.Timestamp < {_NEAR_END}
GROUP BY minute, source, destination
UNION ALL
SELECT minute, source, destination, toUInt8(0), count(), countIf(failed), quantileState(0.95)(duration)
FROM (
    SELECT calls.minute AS minute, any(calls.ServiceName) AS source, any(calls.Peer) AS destination,
           any(calls.Failed) AS failed, any(calls.Duration) AS duration
    FROM (
        SELECT Call, ServiceName, Peer, Failed, Duration, toStartOfMinute(Timestamp) AS minute
        FROM {calls}
        WHERE Timestamp >= {_SINCE} AND Timestamp < {_UNTIL} AND Served = 0 AND Peer != '' AND Peer != ServiceName
    ) AS calls
    LEFT JOIN (
        SELECT Call, Timestamp
        FROM {calls}
        WHERE Timestamp >= {_SINCE} - {_SLACK} AND Timestamp < {_UNTIL} + {_SLACK} AND Served = 1
    ) AS served ON calls.Call = served.Call
    GROUP BY calls.Call, minute
    HAVING countIf(served.Call = calls.Call AND served.Timestamp >= {_NEAR} AND served.Timestamp < {_NEAR_END}) = 0
)
GROUP BY minute, source, destination
"""


def cache_edge_minutes_sql(calls: str, edge_minutes: str) -> str:
    """Store one run of the span witness for the whole minutes of [since, until) in the edge cache."""
    return f"""
INSERT INTO {edge_minutes} (Minute, Source, Destination, Answered, Requests, Errors, Duration, Run)
SELECT minute, source, destination, answered, requests, errors, duration, {{run:UInt64}}
FROM ({span_edge_minutes_sql(calls)})
"""


def span_edges_sql(calls: str, edge_minutes: str, runs: str, *, live: bool) -> str:
    """The span witness of a window per (source, destination, answered), p95 in ms: the latest cached run of each
    minute of [cached_since, cached_until), and (when `live`) the minutes of [live_since, until) computed from the
    spans now. Without live minutes that part is left out: its joins would still read the slack around it."""
    live_minutes = span_edge_minutes_sql(calls).replace(_SINCE, _LIVE_SINCE)
    live_part = (
        "    UNION ALL\n    SELECT source, destination, answered, requests, errors, duration\n"
        f"    FROM ({live_minutes})"
        if live
        else ""
    )
    return f"""
SELECT source, destination, answered, sum(requests), sum(errors), quantileMerge(0.95)(duration) / 1e6
FROM (
    SELECT Source AS source, Destination AS destination, Answered AS answered, Requests AS requests,
           Errors AS errors, Duration AS duration
    FROM {edge_minutes}
    WHERE Minute >= {{cached_since:DateTime('UTC')}} AND Minute < {{cached_until:DateTime('UTC')}}
      AND (Minute, Run) IN (
        SELECT Minute, max(Run) FROM {runs}
        WHERE Minute >= {{cached_since:DateTime('UTC')}} AND Minute < {{cached_until:DateTime('UTC')}}
        GROUP BY Minute
      )
{live_part}
)
GROUP BY source, destination, answered
"""


SPAN_COUNTS = """
SELECT Minute, sum(Spans) FROM $span_minutes
WHERE Minute >= {since:DateTime('UTC')} AND Minute < {until:DateTime('UTC')}
GROUP BY Minute
"""
"""Spans stored per minute (by their start) in a range of minutes."""

EDGE_RUNS = """
SELECT Minute, argMax(Spans, Run) FROM $runs
WHERE Minute >= {since:DateTime('UTC')} AND Minute < {until:DateTime('UTC')}
GROUP BY Minute
"""
"""The span count each cached minute's latest run saw around it."""


SERVING_SERVICES = """
SELECT DISTINCT ServiceName FROM $service_minutes
WHERE Minute >= {since:DateTime('UTC')} AND Minute < {until:DateTime('UTC')} AND ServiceName != ''
ORDER BY ServiceName
"""
"""Services that served at least one request (a server or consumer span) in the whole minutes of a window."""


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


_EDGE_SCHEMA = {
    "source": pl.String, "destination": pl.String, "answered": pl.UInt8, "requests": pl.Int64, "errors": pl.Int64,
    "p95_ms": pl.Float64,
}  # fmt: skip


def _minutes(rows: list[tuple[Any, ...]]) -> dict[datetime, int]:
    return {(m if m.tzinfo else m.replace(tzinfo=UTC)): int(n) for m, n in rows}


def span_counts(store: Store, since: datetime, until: datetime) -> dict[datetime, int]:
    """Spans stored per minute in [since, until) (whole minutes), minutes without spans left out."""
    sql = store.sql(SPAN_COUNTS, span_minutes=SPAN_MINUTES)
    return _minutes(store.rows(sql, {"since": since, "until": until}))


def edge_runs(store: Store, since: datetime, until: datetime) -> dict[datetime, int]:
    """For each cached minute of [since, until), the span count its latest run saw around it."""
    sql = store.sql(EDGE_RUNS, runs=EDGE_MINUTE_RUNS)
    return _minutes(store.rows(sql, {"since": since, "until": until}))


def cache_edge_minutes(
    store: Store, since: datetime, until: datetime, spans_seen: dict[datetime, int], *, slack: timedelta
) -> None:
    """Compute the span witness of the whole minutes of [since, until) and store it as one run of the cache.

    `spans_seen` holds, per minute, the span count around it read before this call: counted before the spans are
    read, it can only be lower than what the run saw, so a minute that changes meanwhile is recomputed later.
    """
    run = time.time_ns()
    sql = cache_edge_minutes_sql(store.table(CALL_SPANS), store.table(EDGE_MINUTES))
    store.command(sql, {"since": since, "until": until, "slack_s": int(slack.total_seconds()), "run": run})
    minutes = sorted(spans_seen)
    store.insert_columns(
        EDGE_MINUTE_RUNS,
        ["Minute", "Spans", "Run"],
        [minutes, [spans_seen[m] for m in minutes], [run] * len(minutes)],
    )


def span_edges(
    store: Store, cached: tuple[datetime, datetime], live: tuple[datetime, datetime], *, slack: timedelta
) -> pl.DataFrame:
    """source, destination, answered, requests, errors, p95_ms of the span witness: the `cached` minutes from the
    cache, the `live` ones from the spans (span_edges_sql)."""
    tables = store.table(CALL_SPANS), store.table(EDGE_MINUTES), store.table(EDGE_MINUTE_RUNS)
    sql = span_edges_sql(*tables, live=live[0] < live[1])
    parameters = {
        "cached_since": cached[0], "cached_until": cached[1], "live_since": live[0], "until": live[1],
        "slack_s": int(slack.total_seconds()),
    }  # fmt: skip
    return _frame(store, sql, parameters, _EDGE_SCHEMA)


def serving_services(store: Store, since: datetime, until: datetime) -> list[str]:
    """Services with server or consumer spans in the whole minutes of [since, until), by name (SERVING_SERVICES)."""
    sql = store.sql(SERVING_SERVICES, service_minutes=SERVICE_MINUTES)
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
