"""The service graph of a window: who calls whom, how much, how well, and over mutual TLS or not (API.md, topology).

Stateless: service health (upstream, downstream) and incident suspects call `service_topology` as the route does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from correlator.correlate.topology import graph_nodes, service_edges
from correlator.model import Edge
from correlator.store import Store
from correlator.store import topology_queries as queries

# How far past the window the other side of a call is looked for: a callee's span may start just after `until`,
# or (clock skew) before its caller's. Wider catches slow queues between producer and consumer, at a cost.
SPAN_SLACK = timedelta(minutes=5)
# How far before the window a counter's baseline point may lie: Prometheus' own lookback, several scrapes long.
COUNTER_LOOKBACK = timedelta(minutes=5)


@dataclass(frozen=True)
class Topology:
    """The services of a window and the edges between them, both sorted."""

    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]


def service_topology(store: Store, since: datetime, until: datetime) -> Topology:
    """The service graph of [since, until): edges from spans and from the meshes, nodes from edges and servers."""
    edges = service_edges(
        queries.span_calls(store, since, until, slack=SPAN_SLACK),
        queries.unanswered_calls(store, since, until, slack=SPAN_SLACK),
        queries.mesh_requests(store, since, until, lookback=COUNTER_LOOKBACK),
        queries.mesh_latency(store, since, until, lookback=COUNTER_LOOKBACK),
    )
    return Topology(nodes=graph_nodes(queries.serving_services(store, since, until), edges), edges=tuple(edges))
