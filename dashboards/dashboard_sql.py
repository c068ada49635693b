"""The SQL of the dashboards' panels, as the ClickHouse plugin runs it: macros for the range, variables for filters.

What a request and an error are comes from correlator/store/telemetry_sql.py, so the panels count exactly what the
API counts. Tables are named without a database: the plugin's connection uses the data source's default database.
Filters put each table's order key first: ServiceName on otel_traces, Timestamp (or TimeUnix) ranges everywhere.
"""

from __future__ import annotations

import re

from correlator.store.telemetry_sql import (
    ERROR_SHAPE,
    ERROR_TYPE,
    IS_CLIENT_CALL,
    IS_ERROR,
    IS_ERROR_LOG,
    IS_REQUEST,
    PEER_NAME,
)

FRAGMENTS = {
    "IS_REQUEST": IS_REQUEST,
    "IS_CLIENT_CALL": IS_CLIENT_CALL,
    "IS_ERROR": IS_ERROR,
    "IS_ERROR_LOG": IS_ERROR_LOG,
    "ERROR_TYPE": ERROR_TYPE,
    "ERROR_SHAPE": ERROR_SHAPE,
    "PEER_NAME": PEER_NAME,
    # A cause from the stored analysis counts when its top suspect scores this much (API.md, IncidentSummary).
    "CAUSE_SCORE": "0.5",
    # How far beyond the range the other side of a call is looked for (docs/topology.md, SPAN_SLACK), and how far
    # before it a counter's baseline point may lie (COUNTER_LOOKBACK).
    "SLACK": "INTERVAL 5 MINUTE",
    # The service variable with one value (Service detail).
    "SERVICE": "${service:sqlstring}",
    # The service variable with many values or All: no filter at all when All is chosen.
    "SERVICES": "$__conditionalAll(ServiceName IN (${service:sqlstring}), $service)",
    "SERVICES_LOWER": "$__conditionalAll(service IN (${service:sqlstring}), $service)",
    "ENVIRONMENT": "${environment:sqlstring}",
    "TIME_TO_RESOLVE": "(toUnixTimestamp64Milli(resolved_at) - toUnixTimestamp64Milli(opened_at)) / 1000",
    "RESOLVED": "resolved_at IS NOT NULL AND resolved_at <= $__toTime",
    "COUNTED_DEPLOYS": "$__timeFilter(started_at) AND environment = {ENVIRONMENT} AND NOT is_rollback",
    "ISTIO": "MetricName = 'istio_requests_total'",
    # The service's requests in the range (ServiceName first: the order key of otel_traces).
    "SERVED": "ServiceName = {SERVICE} AND $__timeFilter(Timestamp) AND {IS_REQUEST}",
    # Client (or producer) spans near the range: the other side of a request in it.
    "CALLS_NEAR": "Timestamp >= $__fromTime - {SLACK} AND Timestamp <= $__toTime + {SLACK} AND {IS_CLIENT_CALL}",
    # An incident's cause: named by hand, else its stored analysis' top suspect when that scores 0.5 or more.
    "CAUSE": "multiIf(i.cause_deploy_id IS NOT NULL, i.cause_deploy_id, "
    "a.top_suspect_score >= {CAUSE_SCORE}, a.top_suspect_deploy_id, NULL)",
}


def sql(template: str, **more: str) -> str:
    """A query from a template whose {UPPER_CASE} names are fragments (constants: values come from macros)."""
    names = {**FRAGMENTS, **more}
    filled, previous = template, ""
    while filled != previous:  # fragments name fragments
        previous, filled = filled, re.sub(r"\{([A-Z_]+)\}", lambda m: names[m.group(1)], filled)
    return filled.strip() + "\n"


def _nested(template: str) -> str:
    """A query to paste inside another one, indented."""
    return "\n    ".join(sql(template).splitlines())


SERVICES_SEEN = sql("""
SELECT DISTINCT ServiceName FROM otel_traces WHERE $__timeFilter(Timestamp) AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT ServiceName FROM otel_logs WHERE $__timeFilter(Timestamp) AND ServiceName != ''
UNION DISTINCT
SELECT DISTINCT service FROM deployments FINAL WHERE $__timeFilter(started_at)
UNION DISTINCT
SELECT DISTINCT service FROM incidents FINAL WHERE status != 'resolved'
""")
"""Services with spans, logs or deploys in the range, or an active incident (as the API's service list)."""

ENVIRONMENTS = "SELECT DISTINCT environment FROM deployments FINAL ORDER BY environment\n"
"""Environments deploys went to."""


def deploy_annotation(where: str) -> str:
    """Deploys started in the range as annotation regions (start to finish) with service, environment, status."""
    return sql(
        """
SELECT started_at AS time, ifNull(finished_at, started_at) AS timeEnd,
       concat('deploy ', service, ' ', ifNull(previous_version, '?'), ' -> ', version) AS title,
       concat(service, ' ', version, ' (', environment, ', ', status, if(is_rollback, ', rollback', ''), ')',
              if(url IS NULL, '', concat(' ', url))) AS text,
       arrayStringConcat(['deploy', service, environment, status], ',') AS tags
FROM deployments FINAL
WHERE $__timeFilter(started_at) AND {WHERE}
ORDER BY time
""",
        WHERE=where,
    )


# Service overview: RED per service over time, error logs, deploys.


def per_service_over_time(value: str) -> str:
    """One value per (interval, service) of the chosen services' requests."""
    return sql(
        """
SELECT $__timeInterval(Timestamp) AS time, ServiceName AS service, {VALUE}
FROM otel_traces
WHERE $__timeFilter(Timestamp) AND {IS_REQUEST} AND {SERVICES}
GROUP BY time, service
ORDER BY time, service
""",
        VALUE=value,
    )


OVERVIEW_RATE = per_service_over_time("count() / $__interval_s AS requests_per_s")
OVERVIEW_ERROR_RATIO = per_service_over_time("countIf({IS_ERROR}) / count() AS error_ratio")
OVERVIEW_P95 = per_service_over_time("quantile(0.95)(Duration) / 1e6 AS p95_ms")

OVERVIEW_SERVICES = sql("""
SELECT ServiceName AS service, count() AS requests,
       count() / greatest(dateDiff('second', $__fromTime, $__toTime), 1) AS requests_per_s,
       countIf({IS_ERROR}) / count() AS error_ratio, quantile(0.95)(Duration) / 1e6 AS p95_ms
FROM otel_traces
WHERE $__timeFilter(Timestamp) AND {IS_REQUEST} AND {SERVICES}
GROUP BY service
ORDER BY service
""")
"""RED of each chosen service over the whole range."""

OVERVIEW_DEPLOYS = sql("""
SELECT started_at, service, environment, version, previous_version, status, is_rollback, source, deploy_id, url
FROM deployments FINAL
WHERE $__timeFilter(started_at) AND {SERVICES_LOWER}
ORDER BY started_at DESC
LIMIT 200
""")
"""Deploys of the chosen services started in the range, newest first."""


def error_logs(where: str) -> str:
    """Log records at ERROR or above, newest first, as the logs panel reads them."""
    return sql(
        """
SELECT Timestamp AS timestamp, Body AS body, SeverityText AS level, ServiceName AS service, TraceId AS traceID,
       SpanId AS spanID
FROM otel_logs
WHERE {WHERE} AND {IS_ERROR_LOG}
ORDER BY Timestamp DESC
LIMIT 1000
""",
        WHERE=where,
    )


OVERVIEW_ERROR_LOGS = error_logs("$__timeFilter(Timestamp) AND {SERVICES}")

# Service detail: one service.

DETAIL_RATE = sql("""
SELECT $__timeInterval(Timestamp) AS time, count() / $__interval_s AS requests_per_s,
       countIf({IS_ERROR}) / $__interval_s AS errors_per_s
FROM otel_traces
WHERE {SERVED}
GROUP BY time
ORDER BY time
""")

DETAIL_ERROR_RATIO = sql("""
SELECT $__timeInterval(Timestamp) AS time, countIf({IS_ERROR}) / count() AS error_ratio
FROM otel_traces
WHERE {SERVED}
GROUP BY time
ORDER BY time
""")

DETAIL_LATENCY = sql("""
SELECT time, q[1] / 1e6 AS p50_ms, q[2] / 1e6 AS p95_ms, q[3] / 1e6 AS p99_ms
FROM (
    SELECT $__timeInterval(Timestamp) AS time, quantiles(0.5, 0.95, 0.99)(Duration) AS q
    FROM otel_traces
    WHERE {SERVED}
    GROUP BY time
)
ORDER BY time
""")

TOP_ENDPOINTS = sql("""
SELECT SpanName AS endpoint, count() AS requests, countIf({IS_ERROR}) / count() AS error_ratio,
       quantile(0.95)(Duration) / 1e6 AS p95_ms
FROM otel_traces
WHERE {SERVED}
GROUP BY endpoint
ORDER BY requests DESC, endpoint
LIMIT 20
""")
"""The busiest span names of the service's requests."""

TOP_ERRORS = sql("""
SELECT {ERROR_TYPE} AS error_type, {ERROR_SHAPE} AS message, count() AS count, max(Timestamp) AS last_seen,
       argMax(TraceId, Timestamp) AS trace_id
FROM otel_traces
WHERE {SERVED} AND {IS_ERROR}
GROUP BY error_type, message
ORDER BY count DESC, error_type, message
LIMIT 20
""")
"""Failed requests by (error type, message shape), with the latest trace of each."""

VERSIONS_OVER_TIME = sql("""
SELECT $__timeInterval(Minute) AS time, if(Version != '', Version, DeploymentId) AS version, sum(Records) AS records
FROM service_version_minutes
WHERE ServiceName = {SERVICE} AND $__timeFilter(Minute)
GROUP BY time, version
ORDER BY time, version
""")
"""Telemetry records per version (service.version, else deployment.id) and interval."""

VERSION_RUNS = sql("""
SELECT first_seen, last_seen, environment, version, deployment_id, deploy_id, records
FROM service_versions FINAL
WHERE service = {SERVICE} AND first_seen <= $__toTime AND last_seen >= $__fromTime
ORDER BY first_seen DESC
LIMIT 100
""")
"""Runs of a version seen in telemetry that overlap the range, and the deploy each became or was covered by."""

CALLERS = sql("""
SELECT calls.ServiceName AS caller, count() AS requests, countIf(served.failed) / count() AS error_ratio,
       quantile(0.95)(served.Duration) / 1e6 AS p95_ms
FROM (
    SELECT TraceId, ParentSpanId, Duration, {IS_ERROR} AS failed
    FROM otel_traces
    WHERE {SERVED} AND ParentSpanId != ''
) AS served
INNER JOIN (
    SELECT TraceId, SpanId, ServiceName
    FROM otel_traces
    WHERE {CALLS_NEAR} AND TraceId IN (SELECT TraceId FROM otel_traces WHERE {SERVED})
) AS calls ON served.TraceId = calls.TraceId AND served.ParentSpanId = calls.SpanId
WHERE calls.ServiceName != {SERVICE} AND calls.ServiceName != ''
GROUP BY caller
ORDER BY requests DESC, caller
""")
"""Services whose client spans are parents of the service's requests in the range (docs/topology.md, spans)."""

CALLEES = sql("""
SELECT served.ServiceName AS callee, 'answered' AS seen, count() AS requests,
       countIf(served.failed) / count() AS error_ratio, quantile(0.95)(served.Duration) / 1e6 AS p95_ms
FROM (
    SELECT TraceId, SpanId
    FROM otel_traces
    WHERE ServiceName = {SERVICE} AND {CALLS_NEAR}
) AS calls
INNER JOIN (
    SELECT TraceId, ParentSpanId, ServiceName, Duration, {IS_ERROR} AS failed
    FROM otel_traces
    WHERE $__timeFilter(Timestamp) AND {IS_REQUEST} AND ParentSpanId != ''
      AND TraceId IN (SELECT TraceId FROM otel_traces WHERE ServiceName = {SERVICE} AND {CALLS_NEAR})
) AS served ON served.TraceId = calls.TraceId AND served.ParentSpanId = calls.SpanId
WHERE served.ServiceName != {SERVICE} AND served.ServiceName != ''
GROUP BY callee
UNION ALL
SELECT peer AS callee, 'unanswered' AS seen, count() AS requests, countIf(failed) / count() AS error_ratio,
       quantile(0.95)(Duration) / 1e6 AS p95_ms
FROM (
    SELECT TraceId, SpanId, Duration, {PEER_NAME} AS peer, {IS_ERROR} AS failed
    FROM otel_traces
    WHERE ServiceName = {SERVICE} AND $__timeFilter(Timestamp) AND {IS_CLIENT_CALL}
)
WHERE peer != '' AND peer != {SERVICE}
  AND (TraceId, SpanId) NOT IN (
    SELECT TraceId, ParentSpanId
    FROM otel_traces
    WHERE Timestamp >= $__fromTime - {SLACK} AND Timestamp <= $__toTime + {SLACK} AND {IS_REQUEST}
      AND ParentSpanId != ''
      AND TraceId IN (SELECT TraceId FROM otel_traces WHERE ServiceName = {SERVICE} AND $__timeFilter(Timestamp))
  )
GROUP BY callee
ORDER BY requests DESC, callee, seen
""")
"""What the service calls: other services' requests whose parent is one of its client spans (answered), and its
client spans nobody answered, named by peer.service or server.address (unanswered, the caller's own view)."""

DETAIL_DEPLOYS = sql("""
SELECT started_at, finished_at, environment, version, previous_version, status, is_rollback, rollback_of, source,
       deploy_id, url
FROM deployments FINAL
WHERE service = {SERVICE} AND $__timeFilter(started_at)
ORDER BY started_at DESC
LIMIT 100
""")

DETAIL_ERROR_LOGS = error_logs("ServiceName = {SERVICE} AND $__timeFilter(Timestamp)")

# Incidents, MTTR and DORA.


def incidents(where: str) -> str:
    """Incidents opened in the range, and every active one, with time to resolve and cause."""
    return sql(
        """
SELECT c.opened_at AS opened_at, c.incident_id AS incident_id, c.title AS title, c.service AS service,
       c.severity AS severity, c.status AS status, c.resolved_at AS resolved_at,
       if(c.resolved_at IS NULL, NULL,
          (toUnixTimestamp64Milli(c.resolved_at) - toUnixTimestamp64Milli(c.opened_at)) / 1000) AS time_to_resolve_s,
       c.impact_started_at AS impact_started_at, c.cause AS cause_deploy_id,
       if(c.cause IS NULL, NULL, concat(d.service, ' ', d.version)) AS cause_deploy,
       c.cause_from AS cause_from, c.trace_id AS trace_id
FROM (
    SELECT i.incident_id AS incident_id, i.title AS title, i.service AS service, i.severity AS severity,
           i.status AS status, i.opened_at AS opened_at, i.resolved_at AS resolved_at,
           a.impact_started_at AS impact_started_at, a.exemplar_trace_ids[1] AS trace_id, {CAUSE} AS cause,
           multiIf(i.cause_deploy_id IS NOT NULL, 'named', a.top_suspect_score >= {CAUSE_SCORE}, 'analysis',
                   NULL) AS cause_from
    FROM (
        SELECT incident_id, title, service, severity, status, opened_at, resolved_at, cause_deploy_id
        FROM incidents FINAL
        WHERE ($__timeFilter(opened_at) OR status != 'resolved') AND {WHERE}
    ) AS i
    LEFT JOIN (
        SELECT incident_id, impact_started_at, top_suspect_deploy_id, top_suspect_score, exemplar_trace_ids
        FROM incident_analysis FINAL
    ) AS a USING (incident_id)
) AS c
LEFT JOIN (SELECT deploy_id, service, version FROM deployments FINAL) AS d ON d.deploy_id = c.cause
ORDER BY opened_at DESC
LIMIT 500
""",
        WHERE=where,
    )


INCIDENTS = incidents("{SERVICES_LOWER}")
DETAIL_INCIDENTS = incidents("service = {SERVICE}")

CAUSES = _nested("""
SELECT cause FROM (
    SELECT {CAUSE} AS cause
    FROM (SELECT incident_id, cause_deploy_id FROM incidents FINAL) AS i
    LEFT JOIN (SELECT incident_id, top_suspect_deploy_id, top_suspect_score FROM incident_analysis FINAL) AS a
        USING (incident_id)
)
WHERE cause IS NOT NULL
""")
"""Every deploy an incident names as its cause."""

DEPLOY_FREQUENCY = sql("""
SELECT count() AS deploys, count() / (dateDiff('second', $__fromTime, $__toTime) / 86400) AS deploys_per_day
FROM deployments FINAL
WHERE {COUNTED_DEPLOYS}
""")
"""Deploys started in the range in the environment, rollbacks not counted, and per day."""

CHANGE_FAILURE_RATE = sql(
    """
SELECT count() AS deploys,
       countIf(status IN ('failed', 'rolled_back') OR deploy_id IN (
           {CAUSES}
       )) AS failed_deploys,
       if(deploys = 0, NULL, failed_deploys / deploys) AS change_failure_rate
FROM deployments FINAL
WHERE {COUNTED_DEPLOYS}
""",
    CAUSES=CAUSES.replace("\n", "\n       "),
)
"""Counted deploys that failed (status failed or rolled_back, or an incident's cause) / counted deploys."""

LEAD_TIME = sql("""
SELECT quantileExactInclusive(0.5)(
           (toUnixTimestamp64Milli(finished_at) - toUnixTimestamp64Milli(commit_time)) / 1000) AS lead_time_s,
       count() AS deploys_with_commit_time
FROM deployments FINAL
WHERE {COUNTED_DEPLOYS} AND commit_time IS NOT NULL AND finished_at IS NOT NULL
""")
"""Median of finished_at - commit_time over counted deploys that carry a commit time."""

TIME_TO_RESTORE = sql("""
SELECT quantileExactInclusive(0.5)(time_to_resolve_s) AS median_ttr_s, count() AS resolved_incidents
FROM (
    SELECT service, {TIME_TO_RESOLVE} AS time_to_resolve_s,
           multiIf(labels['environment'] != '', labels['environment'], labels['env']) AS labelled
    FROM incidents FINAL
    WHERE $__timeFilter(opened_at) AND {RESOLVED}
)
WHERE labelled = {ENVIRONMENT}
   OR (labelled = '' AND service IN (SELECT service FROM deployments FINAL WHERE environment = {ENVIRONMENT}))
""")
"""Median time to resolve of the environment's incidents opened in the range and resolved by its end; an
incident's environment is its environment (or env) label, else that of its service's deploys."""

MTTR = sql("""
SELECT count() AS incidents, countIf(NOT resolved) AS open_incidents, avgIf(time_to_resolve_s, resolved) AS mttr_s,
       quantileExactInclusiveIf(0.5)(time_to_resolve_s, resolved) AS median_ttr_s
FROM (
    SELECT {RESOLVED} AS resolved, {TIME_TO_RESOLVE} AS time_to_resolve_s
    FROM incidents FINAL
    WHERE $__timeFilter(opened_at) AND {SERVICES_LOWER}
)
""")
"""Incidents opened in the range: mean and median time to resolve of those resolved by its end; the rest are
counted as open and never averaged (API.md, Reports)."""

MTTR_TREND = sql("""
SELECT toDateTime(toStartOfInterval(opened_at, INTERVAL 1 ${period}), 'UTC') AS time,
       avg(time_to_resolve_s) AS mean_ttr_s, quantileExactInclusive(0.5)(time_to_resolve_s) AS median_ttr_s,
       count() AS resolved_incidents
FROM (
    SELECT opened_at, {TIME_TO_RESOLVE} AS time_to_resolve_s
    FROM incidents FINAL
    WHERE $__timeFilter(opened_at) AND {RESOLVED} AND {SERVICES_LOWER}
)
GROUP BY time
ORDER BY time
""")
"""Mean and median time to resolve per day or week of opening."""

DORA_DEPLOYS = sql(
    """
SELECT started_at, service, version, status, is_rollback, NOT is_rollback AS counted,
       counted AND (status IN ('failed', 'rolled_back') OR deploy_id IN (
           {CAUSES}
       )) AS failed,
       if(commit_time IS NULL OR finished_at IS NULL, NULL,
          (toUnixTimestamp64Milli(finished_at) - toUnixTimestamp64Milli(commit_time)) / 1000) AS lead_time_s,
       deploy_id
FROM deployments FINAL
WHERE $__timeFilter(started_at) AND environment = {ENVIRONMENT}
ORDER BY started_at DESC
LIMIT 500
""",
    CAUSES=CAUSES.replace("\n", "\n       "),
)
"""The deploys behind the DORA tiles: which were counted and which failed."""

# Mesh: Istio and Linkerd counters.


def _istio_side(side: str) -> str:
    """Istio names workloads; an empty or `unknown` one gives way to the canonical service."""
    workload = f"Attributes['{side}_workload']"
    return f"if({workload} IN ('', 'unknown'), Attributes['{side}_canonical_service'], {workload})"


# Per series (resource attributes + attributes): a point adds its rise over the series' previous point, or its
# whole value after a drop (a counter reset); the series' first point, up to 5 minutes before the range, is the
# baseline and adds nothing. Delta points just add up. Only points in the range count (docs/topology.md).
MESH_INCREASES = _nested(
    """
SELECT TimeUnix, mesh, source, destination, failed, secure, increase
FROM (
    SELECT TimeUnix,
           if({ISTIO}, 'istio', 'linkerd') AS mesh,
           if({ISTIO}, {ISTIO_SOURCE}, Attributes['deployment']) AS source,
           if({ISTIO}, {ISTIO_DESTINATION}, Attributes['dst_deployment']) AS destination,
           if({ISTIO}, startsWith(Attributes['response_code'], '5'),
              Attributes['classification'] = 'failure') AS failed,
           if({ISTIO}, Attributes['connection_security_policy'] = 'mutual_tls', Attributes['tls'] = 'true') AS secure,
           lagInFrame(toNullable(Value)) OVER series AS previous,
           multiIf(AggregationTemporality = 1, Value, previous IS NULL, 0,
                   Value >= previous, Value - assumeNotNull(previous), Value) AS increase
    FROM otel_metrics_sum
    WHERE TimeUnix >= $__fromTime - {SLACK} AND TimeUnix <= $__toTime
      AND (({ISTIO} AND Attributes['reporter'] = 'destination')
           OR (MetricName = 'response_total' AND Attributes['direction'] = 'outbound'))
    WINDOW series AS (PARTITION BY MetricName, ResourceAttributes, Attributes, AggregationTemporality
                      ORDER BY TimeUnix ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE TimeUnix >= $__fromTime AND source NOT IN ('', 'unknown') AND destination NOT IN ('', 'unknown')
""".replace("{ISTIO_SOURCE}", _istio_side("source")).replace("{ISTIO_DESTINATION}", _istio_side("destination"))
)
"""Each mesh counter point in the range as the increase it adds, with its edge, outcome and TLS."""


def over_mesh_increases(template: str) -> str:
    return sql(template, INCREASES=MESH_INCREASES)


MTLS_COVERAGE = over_mesh_increases("""
SELECT sumIf(increase, secure) / sum(increase) AS mtls_coverage, sum(increase) AS requests
FROM (
    {INCREASES}
)
""")
"""Share of the requests the meshes counted that went over mutual TLS."""

MTLS_BY_DESTINATION = over_mesh_increases("""
SELECT destination, sumIf(increase, secure) / sum(increase) AS mtls_coverage, sum(increase) AS requests
FROM (
    {INCREASES}
)
GROUP BY destination
HAVING requests > 0
ORDER BY mtls_coverage, destination
""")

EDGE_RATE = over_mesh_increases("""
SELECT $__timeInterval(TimeUnix) AS time, concat(source, ' -> ', destination) AS edge,
       sum(increase) / $__interval_s AS requests_per_s
FROM (
    {INCREASES}
)
GROUP BY time, edge
ORDER BY time, edge
""")

EDGE_ERROR_RATIO = over_mesh_increases("""
SELECT $__timeInterval(TimeUnix) AS time, concat(source, ' -> ', destination) AS edge,
       sumIf(increase, failed) / nullIf(sum(increase), 0) AS error_ratio
FROM (
    {INCREASES}
)
GROUP BY time, edge
ORDER BY time, edge
""")

EDGES = over_mesh_increases("""
SELECT mesh, source, destination, sum(increase) AS requests, sumIf(increase, failed) / sum(increase) AS error_ratio,
       sumIf(increase, secure) / sum(increase) AS mtls_share
FROM (
    {INCREASES}
)
GROUP BY mesh, source, destination
HAVING requests > 0
ORDER BY requests DESC, mesh, source, destination
""")
"""Each edge per mesh (counts of two meshes are never added): requests, error ratio, mTLS share."""

# The trace view: what the plugin's query builder generates for a trace id in OTel mode
# (sqlGenerator.generateTraceIdQuery), so the query runs as soon as Explore opens. The lookup table narrows the
# scan of otel_traces to the trace's time range.
TRACE_BY_ID = sql("""
WITH '${__value.raw}' as trace_id,
(SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) as trace_start,
(SELECT max(End) + 1 FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) as trace_end
SELECT "TraceId" as traceID, "SpanId" as spanID, "ParentSpanId" as parentSpanID, "ServiceName" as serviceName,
"SpanName" as operationName, multiply(toUnixTimestamp64Nano("Timestamp"), 0.000001) as startTime,
multiply("Duration", 0.000001) as duration,
arrayMap(key -> map('key', key, 'value',"SpanAttributes"[key]), mapKeys("SpanAttributes")) as tags,
arrayMap(key -> map('key', key, 'value',"ResourceAttributes"[key]), mapKeys("ResourceAttributes")) as serviceTags,
if("StatusCode" IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) as statusCode,
arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)),
arrayMap( key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))::Tuple(name String,
timestamp String, fields Array(Map(String, String))), "Events".Name, "Events".Timestamp, "Events".Attributes) AS logs,
arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID, arrayMap(key -> map('key', key, 'value',
attributes[key]), mapKeys(attributes)))::Tuple(traceID String, spanID String, tags Array(Map(String, String))),
"Links".TraceId, "Links".SpanId, "Links".Attributes) AS references,
"SpanKind" as kind, "StatusMessage" as statusMessage, "TraceState" as traceState
FROM otel_traces
WHERE traceID = trace_id AND "Timestamp" >= trace_start AND "Timestamp" <= trace_end
LIMIT 1000
""")
"""Every span of one trace in the columns Grafana's trace view reads."""
