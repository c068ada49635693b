"""The store bench/queries.py reads: spans and logs generated inside the engine, deploys and incidents through the app.

Everything is a deterministic function of a trace number `t` (cityHash64 of it and a salt stands in for chance),
so the spans' SQL and the logs' SQL agree on each trace's services, times and failures without a join.

A trace has 5 to 10 spans: server spans at even positions, client spans at odd ones. Client `p` is made by
server `2 * intDiv(p - 1, 4)` and answered by server `p + 1` when there is one; the last client of a trace of
even size is a call to a database or an outside API (a `peer.service`, no server span: an unanswered call).
Servers 0 (the root), 2 and 4, 6 and 8 sit on three layers of services: 5 `frontend-*` call 5 of 15 `api-*`
each, which call 4 of 30 `core-*` each, so the topology has about 85 span edges plus database edges.
Requests fail on their own 0.5 % of the time, and half the time when a callee failed (about 1 % of requests
fail). Failed server spans carry an `exception` event. `service.version` changes at each generated deploy.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from correlator.api.state import AppState
from correlator.events.records import DeployEvent
from correlator.store import Store

SERVICES = (
    [f"frontend-{i}" for i in range(5)] + [f"api-{i}" for i in range(15)] + [f"core-{i}" for i in range(30)]
)  # fmt: skip
SPANS_PER_TRACE = 7.5  # the mean of 5..10
ENVIRONMENT = "production"
ROUTES = ["/orders/{id}", "/orders", "/cart", "/users/{id}", "/search", "/checkout"]
PEERS = ["postgres", "redis", "payments-gateway"]
ERROR_TYPES = ["TimeoutError", "ConnectionError", "ValueError", "KeyError"]
BAD_TYPE = "AttributeError"
BAD_MESSAGE = "'NoneType' object has no attribute 'price'"

_BADS = "{bads:Array(Tuple(UInt32, Int64, Int64, UInt32, UInt32))}"
"""Bad windows: (service index, from ns, to ns, own error rate per 10,000, root slow-down factor)."""

TRACE_FIELDS = f"""
    5 + cityHash64(t, 1) % 6 AS size,
    lower(hex(MD5(toString(t)))) AS trace_id,
    {{start_ns:Int64}} + toInt64(t) * {{step_ns:Int64}} AS t0,
    toUInt32(cityHash64(t, 2) % 5) AS s0,
    toUInt32(5 + (s0 * 3 + cityHash64(t, 3) % 5) % 15) AS s2,
    toUInt32(5 + (s0 * 3 + cityHash64(t, 4) % 5) % 15) AS s4,
    toUInt32(20 + ((s2 - 5) * 7 + cityHash64(t, 5) % 4) % 30) AS s6,
    toUInt32(20 + ((s2 - 5) * 7 + cityHash64(t, 6) % 4) % 30) AS s8,
    [s0, s2, s4, s6, s8] AS svcs,
    arrayMap(s -> arrayFirstIndex(b -> b.1 = s AND t0 >= b.2 AND t0 < b.3, {_BADS}), svcs) AS bad,
    arrayMap((i, k) -> cityHash64(t, 10 + k) % 10000 < if(i > 0, {_BADS}[i].4, 50), bad, [0, 1, 2, 3, 4]) AS own,
    own[4] AND size > 6 AS e6,
    own[5] AND size > 8 AS e8,
    own[2] OR ((e6 OR e8) AND cityHash64(t, 20) % 2 = 0) AS e2,
    own[3] AS e4,
    own[1] OR ((e2 OR e4) AND cityHash64(t, 21) % 2 = 0) AS e0,
    [e0, e2, e4, e6, e8] AS errs,
    toUInt64((20 + cityHash64(t, 30) % 200) * 1000000 * if(cityHash64(t, 31) % 100 = 0, 5, 1)) AS d,
    if(bad[1] > 0, {_BADS}[bad[1]].5, 1) AS slow
"""
"""Per trace: size, id, start, the service of each server position, which of them failed, the root duration."""

# Per span (or log) of server position `sp`: its duration, its service, its resource at time `ts`.
SPAN_DURATION = "if({sp} = 0, d * slow, intDiv(d * (10 - {sp}), 10))"
SERVER_OF = "svcs[intDiv({sp}, 2) + 1]"
RESOURCE = """map(
        'service.name', service,
        'service.version', concat('1.', toString(arrayCount(x -> x.1 = sidx AND x.2 <= ts,
            {deploys:Array(Tuple(UInt32, Int64))})), '.0'),
        'service.namespace', 'shop',
        'deployment.environment.name', 'production',
        'host.name', concat(service, '-', toString(cityHash64(t, sidx) % 3)),
        'telemetry.sdk.language', 'python',
        'telemetry.sdk.name', 'opentelemetry')"""

SPANS = f"""
INSERT INTO @traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, ResourceAttributes,
    ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
    `Events.Timestamp`, `Events.Name`, `Events.Attributes`)
SELECT
    fromUnixTimestamp64Nano(ts, 'UTC'),
    trace_id,
    leftPad(lower(hex(cityHash64(t, p, 40))), 16, '0'),
    if(p = 0, '', leftPad(lower(hex(cityHash64(t, parent, 40))), 16, '0')),
    multiIf(server, concat('GET ', route), answered, 'GET', concat('SELECT ', peer)),
    if(server, 'Server', 'Client'),
    service,
    {RESOURCE},
    multiIf(server, 'opentelemetry.instrumentation.fastapi', answered, 'opentelemetry.instrumentation.httpx',
        'opentelemetry.instrumentation.sqlalchemy'),
    '0.48b0',
    multiIf(server, map('http.request.method', 'GET', 'http.route', route, 'url.scheme', 'http',
                        'http.response.status_code', if(err, '500', '200')),
            answered, map('http.request.method', 'GET', 'server.address', callee,
                          'http.response.status_code', if(err, '500', '200')),
            map('peer.service', peer, 'db.system', 'postgresql', 'db.operation.name', 'SELECT')),
    duration,
    if(err, 'Error', 'Unset'),
    if(err, message, ''),
    if(server AND err, [fromUnixTimestamp64Nano(ts + toInt64(intDiv(duration, 2)), 'UTC')], []),
    if(server AND err, ['exception'], []),
    if(server AND err, [map('exception.type', etype, 'exception.message', message)], [])
FROM (
    SELECT
        t, size, trace_id, t0, svcs, bad, own, errs, d, slow,
        p,
        p % 2 = 0 AS server,
        if(server, p, 2 * intDiv(p - 1, 4)) AS owner,
        if(server, p - 1, owner) AS parent,
        {SERVER_OF.format(sp="owner")} AS sidx,
        {{services:Array(String)}}[sidx + 1] AS service,
        NOT server AND p + 1 < size AS answered,
        {{services:Array(String)}}[{SERVER_OF.format(sp="p + 1")} + 1] AS callee,
        {{peers:Array(String)}}[sidx % 3 + 1] AS peer,
        {{routes:Array(String)}}[cityHash64(t, p, 43) % 6 + 1] AS route,
        t0 + toInt64(p) * 1000000 + toInt64(cityHash64(t, p, 41) % 500000) AS ts,
        if(server, {SPAN_DURATION.format(sp="p")}, intDiv(d * (10 - p), 10)) AS duration,
        multiIf(server, errs[intDiv(p, 2) + 1], answered, errs[intDiv(p + 1, 2) + 1],
                cityHash64(t, p, 42) % 1000 < 5) AS err,
        server AND own[intDiv(p, 2) + 1] AS own_error,
        bad[intDiv(owner, 2) + 1] > 0 AS in_bad,
        multiIf(NOT own_error, 'UpstreamError', in_bad, '{BAD_TYPE}',
                {{error_types:Array(String)}}[cityHash64(t, p, 44) % 4 + 1]) AS etype,
        multiIf(NOT server, if(answered, 'HTTP 500', 'connection reset by peer'),
                NOT own_error, concat('call to ', {{services:Array(String)}}[{SERVER_OF.format(sp="p + 2")} + 1],
                                      ' failed with HTTP 500'),
                in_bad, {{bad_message:String}},
                concat('order ', toString(cityHash64(t, p, 45) % 100000), ' could not be processed')) AS message
    FROM (
        SELECT number AS t, {TRACE_FIELDS}
        FROM numbers({{first:UInt64}}, {{count:UInt64}})
    )
    ARRAY JOIN range(size) AS p
)
SETTINGS max_insert_threads = 2
"""
"""Spans of traces [first, first + count)."""

LOGS = f"""
INSERT INTO @logs (Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body,
    ResourceAttributes, ScopeName, LogAttributes)
SELECT
    fromUnixTimestamp64Nano(ts, 'UTC'),
    trace_id,
    leftPad(lower(hex(cityHash64(t, sp, 40))), 16, '0'),
    1,
    ['DEBUG', 'INFO', 'WARN', 'ERROR'][level],
    [5, 9, 13, 17][level],
    service,
    multiIf(level = 4, concat('request failed: GET ', route, ' returned 500'),
            level = 3, concat('slow downstream call: ', toString(intDiv(duration, 1000000)), ' ms'),
            level = 1, concat('cache miss for key user:', toString(cityHash64(n, 62) % 100000)),
            concat('GET ', route, ' handled in ', toString(intDiv(duration, 1000000)), ' ms')),
    {RESOURCE},
    'app',
    map('code.function', 'handle', 'code.namespace', concat('shop.', service), 'http.route', route)
FROM (
    SELECT
        n, t, trace_id, svcs, errs, d, slow,
        2 * (cityHash64(n, 60) % intDiv(size + 1, 2)) AS sp,
        {SERVER_OF.format(sp="sp")} AS sidx,
        {{services:Array(String)}}[sidx + 1] AS service,
        {{routes:Array(String)}}[cityHash64(t, sp, 43) % 6 + 1] AS route,
        {SPAN_DURATION.format(sp="sp")} AS duration,
        t0 + toInt64(sp) * 1000000 + toInt64(cityHash64(n, 61) % duration) AS ts,
        multiIf(errs[intDiv(sp, 2) + 1] AND n % 2 = 0, 4, cityHash64(n, 63) % 20 < 2, 3,
                cityHash64(n, 63) % 20 < 6, 1, 2) AS level
    FROM (
        SELECT n, t, {TRACE_FIELDS}
        FROM (
            SELECT number AS n, intDiv(number * {{traces:UInt64}}, {{logs:UInt64}}) AS t
            FROM numbers({{first:UInt64}}, {{count:UInt64}})
        )
    )
)
SETTINGS max_insert_threads = 2
"""
"""Log records [first, first + count) of `logs` spread over `traces` traces in order, each inside a server span."""


def trace_id(t: int) -> str:
    """The id of trace number t, as the SQL makes it."""
    return hashlib.md5(str(t).encode()).hexdigest()


@dataclass(frozen=True)
class PlannedDeploy:
    service: int
    at: datetime
    number: int  # the service's n-th deploy (its version becomes 1.n.0)
    source: str


@dataclass(frozen=True)
class BadWindow:
    """A service failing (`errors` per 10,000 requests) or slow (root durations times `slow`) for a while."""

    service: int
    since: datetime
    until: datetime
    errors: int = 50
    slow: int = 1


@dataclass(frozen=True)
class PlannedIncident:
    title: str
    service: int
    opened_at: datetime
    status: str  # open, acknowledged or mitigated: active, so its analysis is still recomputed on reads


@dataclass(frozen=True)
class Plan:
    """What the generated day holds."""

    start: datetime
    end: datetime
    traces: int
    logs: int
    deploys: list[PlannedDeploy]
    bads: list[BadWindow]
    incidents: list[PlannedIncident]


def plan(end: datetime, spans: int, logs: int, regular_deploys: int = 40) -> Plan:
    """24 hours ending at `end`: regular deploys spread over it, and three bad ones, each with an incident."""
    start = end - timedelta(hours=24)
    core_y, core_z, front_w, api_x = SERVICES.index("core-1"), SERVICES.index("core-15"), 2, SERVICES.index("api-0")
    special = {core_y, core_z, front_w}
    # Regular deploys: services in a scattered order (7 is prime to 50), evenly over the day; some twice.
    order = [s for s in ((k * 7 + 3) % len(SERVICES) for k in range(len(SERVICES))) if s not in special]
    events: list[tuple[int, datetime, str]] = []
    span = timedelta(hours=22)
    for k in range(regular_deploys):
        at = start + timedelta(minutes=40) + span * k / regular_deploys
        events.append((order[k % len(order)], at, "argocd" if k % 3 else "github"))
    # A core service's bad deploy hurts its callers (api-0 calls core-1), fixed by a deploy an hour later;
    # another core service's bad deploy is still failing; a frontend's deploy made it slow 25 minutes ago.
    bad_y, fix_y = end - timedelta(hours=3), end - timedelta(hours=2)
    bad_z, slow_w = end - timedelta(minutes=70), end - timedelta(minutes=25)
    events += [(core_y, bad_y, "argocd"), (core_y, fix_y, "argocd"), (core_z, bad_z, "argocd")]
    events.append((front_w, slow_w, "github"))
    events.sort(key=lambda e: e[1])
    counts: dict[int, int] = {}
    deploys = []
    for service, at, source in events:
        counts[service] = counts.get(service, 0) + 1
        deploys.append(PlannedDeploy(service, at, counts[service], source))
    bads = [
        BadWindow(core_y, bad_y, fix_y, errors=2000),
        BadWindow(core_z, bad_z, end + timedelta(hours=1), errors=1500),
        BadWindow(front_w, slow_w, end + timedelta(hours=1), slow=3),
    ]
    incidents = [
        PlannedIncident("api-0 5xx above 2 %", api_x, bad_y + timedelta(minutes=9), "mitigated"),
        PlannedIncident("core-15 error rate high", core_z, bad_z + timedelta(minutes=7), "acknowledged"),
        PlannedIncident("frontend-2 p95 latency high", front_w, slow_w + timedelta(minutes=8), "open"),
    ]
    traces = max(1, round(spans / SPANS_PER_TRACE))
    return Plan(start, end, traces, logs, deploys, bads, incidents)


def _ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


def _parameters(p: Plan) -> dict[str, object]:
    return {
        "start_ns": _ns(p.start),
        "step_ns": int(86_400 * 1e9) // p.traces,
        "bads": [(b.service, _ns(b.since), _ns(b.until), b.errors, b.slow) for b in p.bads],
        "deploys": [(d.service, _ns(d.at)) for d in p.deploys],
        "services": SERVICES,
        "peers": PEERS,
        "routes": ROUTES,
        "error_types": ERROR_TYPES,
        "bad_message": BAD_MESSAGE,
    }


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(first, min(size, total - first)) for first in range(0, total, size)]


def generate_telemetry(store: Store, p: Plan, say: Callable[[str], None]) -> dict[str, float]:
    """INSERT ... SELECT the spans and logs (the trace-id lookup and version views fill as they go)."""
    common = _parameters(p)
    seconds: dict[str, float] = {}
    # Chunks of about 2M rows keep each statement's memory bounded.
    for label, sql, total, chunk, extra in (
        ("spans", SPANS.replace("@traces", store.table("otel_traces")), p.traces, 270_000, {}),
        ("logs", LOGS.replace("@logs", store.table("otel_logs")), p.logs, 2_000_000,
         {"traces": p.traces, "logs": p.logs}),
    ):  # fmt: skip
        began = time.perf_counter()
        for first, count in _chunks(total, chunk):
            store.command(sql, {**common, **extra, "first": first, "count": count})
        seconds[label] = time.perf_counter() - began
        say(f"  {label:8s} {total:>12,} {'traces' if label == 'spans' else 'records'} in {seconds[label]:6.1f} s")
    return seconds


def record_deploys(state: AppState, p: Plan) -> list[str]:
    """Each planned deploy through the deploys use case, as CI or Argo CD would report it; returns their ids."""
    ids = []
    for d in p.deploys:
        name = SERVICES[d.service]
        revision = hashlib.sha1(f"{name}-{d.number}".encode()).hexdigest()
        event = DeployEvent(
            service=name,
            version=f"1.{d.number}.0",
            source=d.source,  # type: ignore[arg-type]
            deploy_id=f"{d.source}-{name}-{d.number}",
            environment=ENVIRONMENT,
            revision=revision,
            status="succeeded",
            started_at=d.at - timedelta(seconds=30),
            finished_at=d.at + timedelta(seconds=90),
            url=f"https://ci.example.com/{name}/{revision[:8]}",
        )
        ids.append(state.deploys.record(event).deploy_id)
    return ids


def open_incidents(state: AppState, p: Plan) -> list[str]:
    """Each planned incident declared through the incidents use case, then moved to its state."""
    ids = []
    for i in p.incidents:
        incident_id = state.incidents.declare(i.title, SERVICES[i.service], "critical", i.opened_at, {"team": "shop"})
        if i.status in ("acknowledged", "mitigated"):
            state.incidents.transition(incident_id, "acknowledge", i.opened_at + timedelta(minutes=3), None)
        if i.status == "mitigated":
            state.incidents.transition(incident_id, "mitigate", i.opened_at + timedelta(minutes=55), "rolled forward")
        ids.append(incident_id)
    return ids


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
