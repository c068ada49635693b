"""The service graph of a window: who calls whom, how much, how well, and over mutual TLS or not (API.md, topology).

Service health (upstream, downstream) and incident suspects call `service_topology` as the route does. The span
witness of closed minutes comes from the edge cache (store/schema_rollups.py), computed here the first time a
minute is read and again whenever the spans around it changed; the minutes still open are computed every time.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    for minute, around in _counts_around(counts, since, until):
        if runs.get(minute) != around:
            stale[minute] = around
    for run in _runs_of_minutes(sorted(stale)):
        queries.cache_edge_minutes(store, run[0], run[-1] + _MINUTE, {m: stale[m] for m in run}, slack=SPAN_SLACK)


def _counts_around(counts: dict[datetime, int], since: datetime, until: datetime) -> Iterator[tuple[datetime, int]]:
    """Each minute of [since, until) with the spans stored from SPAN_SLACK before it to SPAN_SLACK after its end: a
    sliding sum, so a long window costs one pass."""
    reach = SPAN_SLACK // _MINUTE
    minutes = int((until - since) // _MINUTE)
    per_minute = [counts.get(since + (i - reach) * _MINUTE, 0) for i in range(minutes + 2 * reach + 1)]
    around = sum(per_minute[: 2 * reach + 1])
    for i in range(minutes):
        yield since + i * _MINUTE, around
        around += per_minute[i + 2 * reach + 1] - per_minute[i]


def _runs_of_minutes(minutes: list[datetime]) -> list[list[datetime]]:
    """Sorted minutes grouped into runs of consecutive ones."""
    runs: list[list[datetime]] = []
    for minute in minutes:
        if runs and minute - runs[-1][-1] == _MINUTE:
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs
