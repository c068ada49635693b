"""The topology route: the service graph of a window, from spans and the mesh (API.md, Traces and services)."""

from __future__ import annotations

from datetime import timedelta

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from correlator.api.deps import app_state, require_token, window
from correlator.model import Edge
from correlator.service.clock import utc_now
from correlator.service.topology import Topology, service_topology

router = APIRouter(prefix="/api/v1", tags=["services"], dependencies=[Depends(require_token)])

TOPOLOGY_WINDOW = timedelta(hours=1)


class NodeOut(BaseModel):
    """A service of the graph."""

    service: str


class EdgeOut(BaseModel):
    """Calls from one service to another in the window, as the preferred witness counted them."""

    source: str
    destination: str
    requests: float = Field(description="from Istio, else Linkerd, else spans: never summed across witnesses")
    error_ratio: float | None = Field(description="0..1")
    p95_ms: float | None
    mtls: bool | None = Field(description="true when all mesh traffic was mutual TLS; null when no mesh saw it")
    sources: list[str] = Field(description="every witness, sorted: spans, istio, linkerd")

    @classmethod
    def of(cls, edge: Edge) -> EdgeOut:
        return cls(
            source=edge.source,
            destination=edge.destination,
            requests=edge.requests,
            error_ratio=edge.error_ratio,
            p95_ms=edge.p95_ms,
            mtls=edge.mtls,
            sources=list(edge.sources),
        )


class TopologyOut(BaseModel):
    """The service graph of a window: nodes and edges, each sorted."""

    nodes: list[NodeOut]
    edges: list[EdgeOut]

    @classmethod
    def of(cls, topology: Topology) -> TopologyOut:
        return cls(
            nodes=[NodeOut(service=name) for name in topology.nodes],
            edges=[EdgeOut.of(edge) for edge in topology.edges],
        )


@router.get("/topology", summary="Who calls whom in the window: requests, errors, p95, mTLS and witnesses per edge")
async def topology(
    request: Request,
    since: str | None = Query(None, description="RFC 3339 or a duration back from now (15m); default 1 hour"),
    until: str | None = Query(None, description="RFC 3339 or a duration back from now; default now"),
) -> TopologyOut:
    span = window(request, since, until, TOPOLOGY_WINDOW, utc_now())
    graph = await anyio.to_thread.run_sync(service_topology, app_state(request).store, span.since, span.until)
    return TopologyOut.of(graph)
