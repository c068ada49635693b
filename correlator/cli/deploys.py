"""`correlator deploys list|show|record`: deploys of the running server."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from correlator.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, call, cell, out, when

app = typer.Typer(help="Deploys: list, show, and record one from CI.", no_args_is_help=True)


def _deploy_table(deploys: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("started", "service", "env", "version", "previous", "status", "source", "deploy id"):
        table.add_column(column)
    for d in deploys:
        status = d["status"] + (" (rollback)" if d["is_rollback"] else "")
        table.add_row(
            when(d["started_at"]),
            d["service"],
            d["environment"],
            d["version"],
            cell(d["previous_version"]),
            status,
            d["source"],
            d["deploy_id"],
        )
    return table


@app.command("list")
def list_deploys(
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
    environment: Annotated[str | None, typer.Option(help="Only this environment")] = None,
    since: Annotated[str, typer.Option(help="RFC 3339, or a duration back from now (30m, 7d)")] = "30d",
    until: Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1..1000)")] = 100,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Deploys started in the window, newest first."""
    params = {"service": service, "environment": environment, "since": since, "until": until, "limit": limit}
    answer = call(url, token, lambda api: api.get("/api/v1/deploys", params))
    if json:
        out.print_json(data=answer)
        return
    out.print(_deploy_table(answer["deploys"], f"deploys since {since}"))


@app.command()
def show(
    deploy_id: Annotated[str, typer.Argument(help="The deploy id")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """One deploy: what ran before it, whether it was a rollback, and its impact."""
    deploy = call(url, token, lambda api: api.get(f"/api/v1/deploys/{deploy_id}"))
    if json:
        out.print_json(data=deploy)
        return
    table = Table(title=f"deploy {deploy['deploy_id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in (
        "service", "environment", "version", "previous_version", "status", "is_rollback", "rollback_of",
        "revision", "source", "started_at", "finished_at", "commit_time", "url",
    ):  # fmt: skip
        value = deploy[key]
        table.add_row(key, when(value) if key.endswith(("_at", "_time")) else cell(value))
    out.print(table)


@app.command()
def record(
    service: Annotated[str, typer.Option(help="The deployed service")],
    version: Annotated[str, typer.Option(help="The version now running")],
    environment: Annotated[str | None, typer.Option(help="Default: production")] = None,
    deploy_id: Annotated[str | None, typer.Option(help="Default: derived from service, env, version, revision")] = None,
    revision: Annotated[str | None, typer.Option(help="The commit deployed")] = None,
    commit_time: Annotated[str | None, typer.Option(help="When that commit was made (RFC 3339)")] = None,
    status: Annotated[str | None, typer.Option(help="started, succeeded or failed")] = None,
    started_at: Annotated[str | None, typer.Option(help="RFC 3339; default: now")] = None,
    finished_at: Annotated[str | None, typer.Option(help="RFC 3339")] = None,
    deploy_url: Annotated[str | None, typer.Option("--deploy-url", help="A link to the pipeline run")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Record a deploy from a CI pipeline; re-running the step lands on the same record."""
    body = {
        "service": service,
        "version": version,
        "environment": environment,
        "deploy_id": deploy_id,
        "revision": revision,
        "commit_time": commit_time,
        "status": status,
        "started_at": started_at,
        "finished_at": finished_at,
        "url": deploy_url,
    }
    answer = call(url, token, lambda api: api.post("/api/v1/deploys", body))
    if json:
        out.print_json(data=answer)
        return
    out.print(answer["deploy_id"])
