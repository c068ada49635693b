"""The service graph of a window: who calls whom, how much, how well, and over mutual TLS or not (API.md, topology).

Service health (upstream, downstream) and incident suspects call `service_topology` as the route does. The span
witness of closed minutes comes from the edge cache (store/schema_rollups.py), computed here the first time a
minute is read and again whenever the spans around it changed; the minutes still open are computed every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from correlator.correlate.topology import graph_nodes, service_edges
from correlator.events.times import Window
from correlator.model import Edge
from correlator.service.clock import utc_now
from correlator.store import Store
from correlator.store import topology_queries as queries

# How far around a call's minute the other side of the call is looked for: a callee's span may start after its
# caller's minute, or (clock skew) before it. Wider catches slow queues between producer and consumer, at a cost.
# Whole minutes: the edge cache's span counts are per minute.
SPAN_SLACK = timedelta(minutes=5)
# How far before the window a counter's baseline point may lie: Prometheus' own lookback, several scrapes long.
COUNTER_LOOKBACK = timedelta(minutes=5)
# A minute is cached once the slack after it has passed by this much more: spans still arriving would only make
# the next read compute it again.
SETTLE = timedelta(minutes=2)
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Topology:
    """The services of a window and the edges between them, both sorted."""

    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]


def service_topology(store: Store, since: datetime, until: datetime, now: datetime | None = None) -> Topology:
    """The service graph of [since, until) read in whole minutes (since down to its minute, until up to its own):
    edges from spans and from the meshes, nodes from edges and servers."""
    window = Window(since, until).whole_minutes()
    spans = _span_witness(store, window, now or utc_now())
    answered = spans.filter(pl.col("answered") == 1).drop("answered")
    unanswered = spans.filter(pl.col("answered") == 0).drop("answered")
    edges = service_edges(
        answered,
        unanswered,
        queries.mesh_requests(store, window.since, window.until, lookback=COUNTER_LOOKBACK),
        queries.mesh_latency(store, window.since, window.until, lookback=COUNTER_LOOKBACK),
    )
    serving = queries.serving_services(store, window.since, window.until)
    return Topology(nodes=graph_nodes(serving, edges), edges=tuple(edges))


def _span_witness(store: Store, window: Window, now: datetime) -> pl.DataFrame:
    """The span witness per (source, destination, answered): cached minutes, refreshed where stale, and live ones."""
    since, until = window.since, window.until
    settled = Window(now - SPAN_SLACK - SETTLE, now - SPAN_SLACK - SETTLE).whole_minutes().since
    cached_until = max(since, min(until, settled))
    if cached_until > since:
        _refresh(store, since, cached_until)
    return queries.span_edges(store, (since, cached_until), (cached_until, until), slack=SPAN_SLACK)


def _refresh(store: Store, since: datetime, until: datetime) -> None:
    """Compute the minutes of [since, until) whose cached run is missing or saw other spans than are stored now."""
    counts = queries.span_counts(store, since - SPAN_SLACK, until + SPAN_SLACK)
    runs = queries.edge_runs(store, since, until)
    stale: dict[datetime, int] = {}
    minute = since
    while minute < until:
        around = sum(n for m, n in counts.items() if minute - SPAN_SLACK <= m < minute + _MINUTE + SPAN_SLACK)
        if runs.get(minute) != around:
            stale[minute] = around
        minute += _MINUTE
    for first, last in _runs_of_minutes(sorted(stale)):
        seen = {m: stale[m] for m in stale if first <= m <= last}
        queries.cache_edge_minutes(store, first, last + _MINUTE, seen, slack=SPAN_SLACK)


def _runs_of_minutes(minutes: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive minutes grouped as (first, last)."""
    groups: list[tuple[datetime, datetime]] = []
    for minute in minutes:
        if groups and minute - groups[-1][1] == _MINUTE:
            groups[-1] = (groups[-1][0], minute)
        else:
            groups.append((minute, minute))
    return groups
