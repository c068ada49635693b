"""`correlator health [SERVICE]`: the service list with health, or one service in detail."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from correlator.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, call, cell, out, when

STATUS_STYLE = {"failing": "red", "degraded": "yellow", "healthy": "green", "no_data": "dim"}


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _list_table(services: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("service", "status", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "error logs", "version"):
        table.add_column(column, justify="right" if column not in ("service", "status", "version") else "left")
    for s in services:
        latency = s["latency_ms"]
        table.add_row(
            s["service"], _status(s["status"]), f"{s['rate_rps']:.2f}", _ratio(s["error_ratio"]),
            _ms(latency["p50"]), _ms(latency["p95"]), _ms(latency["p99"]), str(s["log_errors"]),
            cell(s["current_version"]),
        )  # fmt: skip
    return table


def _detail(s: dict[str, Any]) -> None:
    out.print(_list_table([s], f"{s['service']} from {when(s['since'])} to {when(s['until'])}"))
    out.print(f"current deploy: {cell(s['current_deploy_id'])}", highlight=False)
    out.print(f"upstream: {', '.join(s['upstream']) or '-'}    downstream: {', '.join(s['downstream']) or '-'}")
    if s["open_incidents"]:
        table = Table(title="open incidents")
        for column in ("opened", "status", "severity", "title", "incident id"):
            table.add_column(column)
        for i in s["open_incidents"]:
            table.add_row(when(i["opened_at"]), i["status"], cell(i["severity"]), i["title"], i["incident_id"])
        out.print(table)
    if s["top_errors"]:
        table = Table(title="top errors")
        for column in ("count", "type", "message"):
            table.add_column(column)
        for e in s["top_errors"]:
            table.add_row(str(e["count"]), e["type"], e["message"])
        out.print(table)
    if s["top_endpoints"]:
        table = Table(title="top endpoints")
        for column in ("endpoint", "requests", "errors", "p95 ms"):
            table.add_column(column)
        for e in s["top_endpoints"]:
            table.add_row(e["name"], str(e["requests"]), _ratio(e["error_ratio"]), _ms(e["p95_ms"]))
        out.print(table)
    if s["recent_deploys"]:
        table = Table(title="deploys, last 7 days")
        for column in ("started", "env", "version", "status", "deploy id"):
            table.add_column(column)
        for d in s["recent_deploys"]:
            table.add_row(when(d["started_at"]), d["environment"], d["version"], d["status"], d["deploy_id"])
        out.print(table)


def health(
    service: Annotated[str | None, typer.Argument(help="One service in detail; all services without it")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now (15m); default 1h")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Service health: rate, errors, latency, deploys, incidents and neighbours."""
    params = {"since": since, "until": until}
    path = f"/api/v1/services/{service}/health" if service else "/api/v1/services"
    answer = call(url, token, lambda api: api.get(path, params))
    if json:
        out.print_json(data=answer)
    elif service:
        _detail(answer)
    else:
        out.print(_list_table(answer["services"], f"services, last {since or '1h'}"))
