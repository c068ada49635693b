"""`correlator incidents list|show|declare|ack|mitigate|resolve|note`: incidents of the running server."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from correlator.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, call, cell, out, when

app = typer.Typer(help="Incidents: list, show, declare, and move one through its states.", no_args_is_help=True)

AtOption = Annotated[str | None, typer.Option("--at", help="RFC 3339; default: now")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note for the timeline")]
IdArgument = Annotated[str, typer.Argument(help="The incident id")]


def _print_summary(incident: dict[str, Any]) -> None:
    out.print(f"{incident['incident_id']}  {incident['status']}  {incident['service']}  {incident['title']}")


@app.command("list")
def list_incidents(
    status: Annotated[str | None, typer.Option(help="States, comma-separated, or 'active'")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
    severity: Annotated[str | None, typer.Option(help="Only this severity")] = None,
    since: Annotated[str, typer.Option(help="RFC 3339, or a duration back from now (30m, 7d)")] = "30d",
    until: Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1..1000)")] = 100,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Incidents opened in the window (unresolved ones whenever they opened, with --status active), newest first."""
    params = {"status": status, "service": service, "severity": severity, "since": since, "until": until}
    answer = call(url, token, lambda api: api.get("/api/v1/incidents", {**params, "limit": limit}))
    if json:
        out.print_json(data=answer)
        return
    table = Table(title="incidents")
    for column in ("opened", "status", "service", "severity", "title", "resolved in", "incident id"):
        table.add_column(column)
    for i in answer["incidents"]:
        seconds = i["time_to_resolve_s"]
        table.add_row(
            when(i["opened_at"]),
            i["status"],
            i["service"],
            cell(i["severity"]),
            i["title"],
            f"{seconds / 60:.1f} min" if seconds is not None else "-",
            i["incident_id"],
        )
    out.print(table)


@app.command()
def show(
    incident_id: IdArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None, json: JsonOption = False
) -> None:
    """One incident with its timeline."""
    incident = call(url, token, lambda api: api.get(f"/api/v1/incidents/{incident_id}"))
    if json:
        out.print_json(data=incident)
        return
    out.print(f"[bold]{incident['title']}[/bold]  ({incident['incident_id']})", highlight=False)
    out.print(
        f"service {incident['service']} · severity {cell(incident['severity'])} · status {incident['status']}"
        f" · source {incident['source']} · cause {cell(incident['cause_deploy_id'])}",
        highlight=False,
    )
    for key in ("opened_at", "acknowledged_at", "mitigated_at", "resolved_at"):
        out.print(f"  {key:<16} {when(incident[key])}", highlight=False)
    table = Table(title="timeline")
    for column in ("at", "kind", "what"):
        table.add_column(column)
    for entry in incident["timeline"]:
        table.add_row(when(entry["at"]), entry["kind"], entry["text"])
    out.print(table)


@app.command()
def declare(
    title: Annotated[str, typer.Option(help="What is wrong")],
    service: Annotated[str, typer.Option(help="The service affected")],
    severity: Annotated[str | None, typer.Option(help="For example critical, warning")] = None,
    opened_at: Annotated[str | None, typer.Option(help="RFC 3339; default: now")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Declare an incident by hand; prints its id."""
    body = {"title": title, "service": service, "severity": severity, "opened_at": opened_at}
    answer = call(url, token, lambda api: api.post("/api/v1/incidents", body))
    if json:
        out.print_json(data=answer)
        return
    out.print(answer["incident_id"])


def _transition(
    name: str, incident_id: str, at: str | None, note: str | None, url: str, token: str | None, json: bool
) -> None:
    answer = call(url, token, lambda api: api.post(f"/api/v1/incidents/{incident_id}/{name}", {"at": at, "note": note}))
    if json:
        out.print_json(data=answer)
        return
    _print_summary(answer)


@app.command()
def ack(
    incident_id: IdArgument, at: AtOption = None, note: NoteOption = None, url: UrlOption = DEFAULT_URL,
    token: TokenOption = None, json: JsonOption = False,
) -> None:  # fmt: skip
    """Acknowledge an open incident."""
    _transition("acknowledge", incident_id, at, note, url, token, json)


@app.command()
def mitigate(
    incident_id: IdArgument, at: AtOption = None, note: NoteOption = None, url: UrlOption = DEFAULT_URL,
    token: TokenOption = None, json: JsonOption = False,
) -> None:  # fmt: skip
    """Mark an incident mitigated (the bleeding stopped; the cause may remain)."""
    _transition("mitigate", incident_id, at, note, url, token, json)


@app.command()
def resolve(
    incident_id: IdArgument, at: AtOption = None, note: NoteOption = None, url: UrlOption = DEFAULT_URL,
    token: TokenOption = None, json: JsonOption = False,
) -> None:  # fmt: skip
    """Resolve an incident."""
    _transition("resolve", incident_id, at, note, url, token, json)


@app.command()
def note(
    incident_id: IdArgument,
    text: Annotated[str, typer.Argument(help="The note")],
    at: AtOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Add a note to an incident's timeline."""
    answer = call(url, token, lambda api: api.post(f"/api/v1/incidents/{incident_id}/notes", {"text": text, "at": at}))
    if json:
        out.print_json(data=answer)
        return
    out.print("noted")
