"""The service graph from its witnesses: calls seen in spans, and the meshes' request counters and latency buckets.

Pure: frames in (as the topology queries return them), `Edge` records out. One edge per (source, destination)
whoever saw it; counts are never summed across witnesses: Istio's count wins, then Linkerd's, then the spans'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from correlator.model import Edge

# Who wins where several witnesses see one edge: the meshes see unsampled traffic (API.md, topology).
PREFERENCE = ("istio", "linkerd", "spans")
P95 = 0.95


@dataclass(frozen=True)
class Witness:
    """What one witness saw of one edge in the window."""

    requests: float
    errors: float
    p95_ms: float | None
    mtls: bool | None


def histogram_quantile(quantile: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """A quantile of bucketed observations, as Prometheus' histogram_quantile computes it.

    `counts[i]` counts observations in (bounds[i-1], bounds[i]], the last one those above every bound. The rank
    falls in one bucket and is interpolated linearly inside it (the first bucket starts at 0 when its bound is
    positive); a rank in the open last bucket answers the highest bound. None without observations.
    """
    total = sum(counts)
    if total <= 0 or not bounds:
        return None
    rank = quantile * total
    below = 0.0
    for index, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            if index >= len(bounds):
                return float(bounds[-1])
            upper = bounds[index]
            lower = bounds[index - 1] if index > 0 else min(0.0, upper)
            return float(lower + (upper - lower) * (rank - below) / count)
        below += count
    return float(bounds[-1])


def span_witnesses(answered: pl.DataFrame, unanswered: pl.DataFrame) -> dict[tuple[str, str], Witness]:
    """Edges the spans saw: calls a callee's server span answered, plus calls nobody's span answered.

    Both are the same witness, so they add up (a call refused before the callee saw it still failed); the p95
    is the callee's where it answered, else the caller's view of the call.
    """
    witnesses: dict[tuple[str, str], Witness] = {}
    for frame in (answered, unanswered):
        for row in frame.iter_rows(named=True):
            key = (row["source"], row["destination"])
            seen = witnesses.get(key)
            p95 = row["p95_ms"] if seen is None or seen.p95_ms is None else seen.p95_ms
            witnesses[key] = Witness(
                requests=row["requests"] + (seen.requests if seen else 0),
                errors=row["errors"] + (seen.errors if seen else 0),
                p95_ms=p95,
                mtls=None,
            )
    return witnesses


def _latency_p95(latency: pl.DataFrame) -> dict[tuple[str, str, str], float | None]:
    """p95 per (mesh, source, destination); where series disagree on bounds, the bounds with most observations."""
    best: dict[tuple[str, str, str], tuple[float, float | None]] = {}
    for row in latency.iter_rows(named=True):
        key = (row["mesh"], row["source"], row["destination"])
        observed = float(sum(row["buckets"]))
        if key not in best or observed > best[key][0]:
            best[key] = (observed, histogram_quantile(P95, row["bounds"], row["buckets"]))
    return {key: p95 for key, (_, p95) in best.items()}


def mesh_witnesses(requests: pl.DataFrame, latency: pl.DataFrame) -> dict[tuple[str, str], dict[str, Witness]]:
    """Edges the meshes saw, per mesh: requests and failures counted, mTLS only when all traffic was mutual TLS."""
    p95 = _latency_p95(latency)
    per_edge = (
        requests.filter(pl.col("requests") > 0)
        .group_by("mesh", "source", "destination")
        .agg(
            pl.col("requests").sum().alias("requests"),
            pl.col("requests").filter(pl.col("failed")).sum().alias("errors"),
            pl.col("secure").all().alias("mtls"),
        )
    )
    witnesses: dict[tuple[str, str], dict[str, Witness]] = {}
    for row in per_edge.iter_rows(named=True):
        key = (row["source"], row["destination"])
        witness = Witness(row["requests"], row["errors"], p95.get((row["mesh"], *key)), row["mtls"])
        witnesses.setdefault(key, {})[row["mesh"]] = witness
    return witnesses


def merge_witnesses(
    spans: dict[tuple[str, str], Witness], meshes: dict[tuple[str, str], dict[str, Witness]]
) -> list[Edge]:
    """One edge per (source, destination): counts from the preferred witness, mTLS from a mesh, every witness named.

    The p95 comes from the witness whose count won, else from the next witness (in preference order) that has one.
    """
    edges: list[Edge] = []
    for key in sorted(spans.keys() | meshes.keys()):
        seen = dict(meshes.get(key, {}))
        if key in spans:
            seen["spans"] = spans[key]
        ranked = [seen[name] for name in PREFERENCE if name in seen]
        winner = ranked[0]
        p95 = next((w.p95_ms for w in ranked if w.p95_ms is not None and not math.isnan(w.p95_ms)), None)
        mtls = next((w.mtls for w in ranked if w.mtls is not None), None)
        error_ratio = winner.errors / winner.requests if winner.requests > 0 else None
        edges.append(Edge(key[0], key[1], winner.requests, error_ratio, p95, mtls, tuple(sorted(seen))))
    return edges


def service_edges(
    answered: pl.DataFrame, unanswered: pl.DataFrame, mesh_requests: pl.DataFrame, mesh_latency: pl.DataFrame
) -> list[Edge]:
    """Every edge of the window from the four topology frames, sorted by (source, destination)."""
    return merge_witnesses(span_witnesses(answered, unanswered), mesh_witnesses(mesh_requests, mesh_latency))


def graph_nodes(serving: Iterable[str], edges: Iterable[Edge]) -> tuple[str, ...]:
    """Every service that served requests in the window or appears on an edge, sorted."""
    names = set(serving)
    for edge in edges:
        names.update((edge.source, edge.destination))
    names.discard("")
    return tuple(sorted(names))
