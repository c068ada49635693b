"""`correlator topology`: the service graph of the running server's window."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from correlator.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, call, cell, out


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _mtls(value: bool | None) -> str:
    return cell(None if value is None else ("yes" if value else "no"))


def _edge_table(graph: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("source", "destination", "requests", "errors", "p95 ms", "mTLS", "seen by"):
        table.add_column(column, justify="right" if column in ("requests", "errors", "p95 ms") else "left")
    for edge in graph["edges"]:
        table.add_row(
            edge["source"],
            edge["destination"],
            f"{edge['requests']:,.0f}",
            _ratio(edge["error_ratio"]),
            _number(edge["p95_ms"]),
            _mtls(edge["mtls"]),
            ", ".join(edge["sources"]),
        )
    return table


def topology(
    since: Annotated[str, typer.Option(help="RFC 3339, or a duration back from now (15m, 1h)")] = "1h",
    until: Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Who calls whom in the window: requests, errors, p95 and mTLS per edge, from spans and the mesh."""
    graph = call(url, token, lambda api: api.get("/api/v1/topology", {"since": since, "until": until}))
    if json:
        out.print_json(data=graph)
        return
    services = len(graph["nodes"])
    out.print(_edge_table(graph, f"{services} services, {len(graph['edges'])} edges since {since}"))
