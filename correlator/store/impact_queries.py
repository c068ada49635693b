"""Queries behind deploy impact and incident analysis: one service's requests, errors and callers around a time."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from correlator.store.client import Store
from correlator.store.schema_otel import TRACES
from correlator.store.schema_rollups import CALL_SPANS
from correlator.store.telemetry_sql import (
    ENVIRONMENT,
    ERROR_SHAPE,
    ERROR_TYPE,
    IS_ERROR,
    IS_REQUEST,
)

# Rows of the service in the environment, between the start of `before` and the end of `after`.
_SCOPE = (
    "ServiceName = {service:String} AND " + ENVIRONMENT + " = {environment:String}"
    " AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp < {until:DateTime64(9, 'UTC')}"
)
_SIDE = "if(Timestamp < {split:DateTime64(9, 'UTC')}, 'before', 'after')"

SIDES = f"""
SELECT {_SIDE} AS side, count(), countIf({IS_ERROR}), quantilesExact(0.5, 0.95, 0.99)(Duration),
       groupArraySample({{sample:UInt32}}, 17)(Duration)
FROM $traces
WHERE {_SCOPE} AND {IS_REQUEST}
GROUP BY side
"""
"""Requests, errors, duration percentiles (ns) and a fixed-seed sample of durations before and after a split."""

ERROR_TYPES = f"""
SELECT {_SIDE} AS side, {ERROR_TYPE} AS type, {ERROR_SHAPE} AS message, count() AS count, min(Timestamp)
FROM $traces
WHERE {_SCOPE} AND {IS_REQUEST} AND {IS_ERROR}
GROUP BY side, type, message
ORDER BY count DESC, type, message
"""
"""Failed requests by error type (exception type and message shape) before and after a split, with the first
time each was seen on its side."""

CALLERS = f"""
SELECT calls.ServiceName AS caller, if(calls.Timestamp < {{split:DateTime64(9, 'UTC')}}, 'before', 'after') AS side,
       count(), countIf(calls.Failed)
FROM (
    SELECT Call, ServiceName, Timestamp, Failed FROM $calls
    WHERE Served = 0 AND ServiceName != {{service:String}}
      AND Timestamp >= {{since:DateTime64(9, 'UTC')}} AND Timestamp < {{until:DateTime64(9, 'UTC')}}
) AS calls
INNER JOIN (
    SELECT cityHash64(TraceId, ParentSpanId) AS Call FROM $traces
    WHERE {_SCOPE} AND {IS_REQUEST} AND ParentSpanId != ''
) AS served ON calls.Call = served.Call
GROUP BY caller, side
ORDER BY caller, side
"""
"""Calls other services made to this one (client spans whose child is its request), and how many failed. The
client spans come from call_spans (time-ordered: an hour of every service's calls is a range there, most of a
day's granules in otel_traces), matched on the hash of (trace id, client span id) that call_spans keeps."""


def _parameters(service: str, environment: str, since: datetime, split: datetime, until: datetime) -> dict[str, object]:
    return {"service": service, "environment": environment, "since": since, "split": split, "until": until}


def request_sides(
    store: Store, service: str, environment: str, since: datetime, split: datetime, until: datetime, sample: int
) -> pl.DataFrame:
    """side, requests, errors, p50_ms, p95_ms, p99_ms, durations_ms (a sample) for `before` and `after`."""
    parameters = {**_parameters(service, environment, since, split, until), "sample": sample}
    rows = store.rows(store.sql(SIDES, traces=TRACES), parameters)
    return pl.DataFrame(
        [
            (side, int(n), int(e), q[0] / 1e6, q[1] / 1e6, q[2] / 1e6, [d / 1e6 for d in sample_ns])
            for side, n, e, q, sample_ns in rows
        ],
        schema={
            "side": pl.String,
            "requests": pl.Int64,
            "errors": pl.Int64,
            "p50_ms": pl.Float64,
            "p95_ms": pl.Float64,
            "p99_ms": pl.Float64,
            "durations_ms": pl.List(pl.Float64),
        },
        orient="row",
    )


def error_types(
    store: Store, service: str, environment: str, since: datetime, split: datetime, until: datetime
) -> pl.DataFrame:
    """side, type, message, count, first_seen of failed requests."""
    rows = store.rows(store.sql(ERROR_TYPES, traces=TRACES), _parameters(service, environment, since, split, until))
    schema: dict[str, pl.DataType] = {
        "side": pl.String(), "type": pl.String(), "message": pl.String(), "count": pl.Int64(),
        "first_seen": pl.Datetime("ns", "UTC"),
    }  # fmt: skip
    return pl.DataFrame([(*r[:4], r[4].replace(tzinfo=UTC)) for r in rows], schema=schema, orient="row")


def callers(
    store: Store, service: str, environment: str, since: datetime, split: datetime, until: datetime
) -> pl.DataFrame:
    """caller, side, calls, errors: other services' calls to this one."""
    sql = store.sql(CALLERS, traces=TRACES, calls=CALL_SPANS)
    rows = store.rows(sql, _parameters(service, environment, since, split, until))
    schema = {"caller": pl.String, "side": pl.String, "calls": pl.Int64, "errors": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")
