"""The trace view: one trace's spans as a tree, with its logs, its exemplars and the deploys its services ran."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from correlator.correlate.trace_tree import SpanRef, tree_order
from correlator.errors import BadRequest, NotFound
from correlator.store import Store
from correlator.store import trace_queries as queries
from correlator.store.trace_queries import DeployCandidate, ResourceDeploy, TraceRange, from_ns

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# The view's reads run two at a time (spans beside the range and logs, then exemplars beside deploys): chDB runs
# queries of different threads at once, and a point read is mostly waiting on one core for its granules.
_BESIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="trace-view")
ERROR_STATUS = "Error"


@dataclass(frozen=True)
class SpanEvent:
    at: datetime
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class TraceSpan:
    """One span of the view; `parent_span_id` is what the span names, even when that parent never arrived."""

    span_id: str
    parent_span_id: str | None
    service: str | None
    name: str | None
    kind: str
    start: datetime
    duration_ms: float
    status_code: str
    status_message: str | None
    attributes: dict[str, str]
    events: tuple[SpanEvent, ...]


@dataclass(frozen=True)
class TraceLog:
    timestamp: datetime
    service: str | None
    severity_text: str | None
    severity_number: int | None
    body: str | None
    span_id: str | None
    attributes: dict[str, str]


@dataclass(frozen=True)
class TraceExemplar:
    """A metric point's exemplar that names the trace (and the span it was recorded in, when it says)."""

    metric: str
    service: str | None
    value: float
    at: datetime
    span_id: str | None


@dataclass(frozen=True)
class TraceDeploy:
    """The deploy a service of the trace was running; `deploy_id` None when no stored deploy matches."""

    service: str
    version: str | None
    deploy_id: str | None


@dataclass(frozen=True)
class TraceView:
    """A trace as API.md shows it: spans depth first, siblings by start time; logs and exemplars oldest first."""

    trace_id: str
    started_at: datetime
    duration_ms: float
    error: bool
    services: tuple[str, ...]
    spans: tuple[TraceSpan, ...]
    logs: tuple[TraceLog, ...]
    exemplars: tuple[TraceExemplar, ...]
    deploys: tuple[TraceDeploy, ...]


def parse_trace_id(value: str) -> str:
    """A trace id as stored (lowercase hex) from any case; 400 when it is not 32 hex digits."""
    trace_id = value.strip().lower()
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadRequest(f"expected a trace id of 32 hex digits, got {value!r}")
    return trace_id


def trace_view(store: Store, trace_id: str) -> TraceView:
    """One trace by id; 404 when the store has no span of it. Its spans by id beside its logs (the logs' range comes
    from the lookup table), then exemplars beside deploys (both need the services the first two found; the deploys
    of services that only logged need their logs' resources first)."""
    trace_id = parse_trace_id(trace_id)
    logs_read = _BESIDE.submit(_range_and_logs, store, trace_id)
    rows = queries.trace_spans(store, trace_id)
    starts, logs = logs_read.result()
    if not rows and starts is not None:
        rows = queries.trace_spans_in(store, trace_id, starts)  # spans the copy by trace id does not hold
    if not rows:
        raise NotFound(f"no trace with id {trace_id!r}")
    if starts is None:  # the lookup table lacks what spans_by_trace has: the spans say where the logs are
        starts = TraceRange(from_ns(rows[0].start_ns), from_ns(rows[-1].start_ns) + timedelta(seconds=1))
        logs = queries.trace_logs(store, trace_id, starts)
    started_ns = min(r.start_ns for r in rows)
    ended_ns = max(r.start_ns + r.duration_ns for r in rows)
    within = TraceRange(from_ns(started_ns), from_ns(ended_ns))
    placed = tree_order([SpanRef(r.span_id, r.parent_span_id, r.start_ns) for r in rows])
    spans = [rows[p.index] for p in placed]

    services: dict[str, None] = {}
    # Each distinct resource of a service (replicas mid-rollout may differ) with the first time it shows.
    resources: dict[tuple[str, ResourceDeploy], int] = {}
    for span in spans:
        if span.service is not None:
            services.setdefault(span.service)
            key = (span.service, span.resource)
            resources[key] = min(span.start_ns, resources.get(key, span.start_ns))
    only_logged = list(
        dict.fromkeys(log.service for log in logs if log.service is not None and log.service not in services)
    )
    services.update((service, None) for service in only_logged)

    exemplars_read = _BESIDE.submit(queries.trace_exemplars, store, trace_id, within, list(services))
    # A service that only logged in this trace: its logs' resource says what it ran (read only then).
    for service, resource, first_ns in sorted(
        queries.trace_log_resources(store, trace_id, starts, only_logged), key=lambda found: (found[2], found[0])
    ):
        resources[(service, resource)] = first_ns
    deploys = _deploys(store, resources)
    exemplars = exemplars_read.result()
    return TraceView(
        trace_id=trace_id,
        started_at=from_ns(started_ns),
        duration_ms=(ended_ns - started_ns) / 1e6,
        error=any(r.status_code == ERROR_STATUS for r in rows),
        services=tuple(services),
        spans=tuple(
            TraceSpan(
                span_id=r.span_id,
                parent_span_id=r.parent_span_id,
                service=r.service,
                name=r.name,
                kind=r.kind,
                start=from_ns(r.start_ns),
                duration_ms=r.duration_ns / 1e6,
                status_code=r.status_code,
                status_message=r.status_message,
                attributes=r.attributes,
                events=tuple(SpanEvent(e.at, e.name, e.attributes) for e in r.events),
            )
            for r in spans
        ),
        logs=tuple(
            TraceLog(
                from_ns(r.timestamp_ns), r.service, r.severity_text, r.severity_number, r.body, r.span_id, r.attributes
            )
            for r in logs
        ),
        exemplars=tuple(TraceExemplar(e.metric, e.service, e.value, e.at, e.span_id) for e in exemplars),
        deploys=deploys,
    )


def _range_and_logs(store: Store, trace_id: str) -> tuple[TraceRange | None, list[queries.LogRow]]:
    starts = queries.trace_range(store, trace_id)
    return starts, queries.trace_logs(store, trace_id, starts) if starts is not None else []


def _deploys(store: Store, resources: dict[tuple[str, ResourceDeploy], int]) -> tuple[TraceDeploy, ...]:
    """The deploy each service ran: the one its deployment.id names, else the latest of its version started by
    the time the service shows in the trace, else none (with the version its telemetry reports)."""
    ids = sorted({r.deployment_id for _, r in resources if r.deployment_id})
    runs = sorted({(s, r.environment, r.version) for s, r in resources if r.version})
    until = from_ns(max(resources.values())) if resources else None
    candidates = queries.deploy_candidates(store, ids, runs, until) if until is not None else []
    found: dict[TraceDeploy, None] = {}
    for (service, resource), first_ns in resources.items():
        deploy = _running(candidates, service, resource, from_ns(first_ns))
        if deploy is not None:
            found.setdefault(TraceDeploy(service, deploy.version, deploy.deploy_id))
        else:
            found.setdefault(TraceDeploy(service, resource.version, None))
    return tuple(found)


def _running(
    candidates: Sequence[DeployCandidate], service: str, resource: ResourceDeploy, seen_at: datetime
) -> DeployCandidate | None:
    # A deployment.id shared with another service's deploy (a platform-wide release id) does not name this one.
    for deploy in candidates:
        if deploy.deploy_id == resource.deployment_id and deploy.service == service:
            return deploy
    wanted = (service, resource.environment, resource.version)
    started = [d for d in candidates if (d.service, d.environment, d.version) == wanted and d.started_at <= seen_at]
    return started[-1] if started else None  # candidates come oldest first
