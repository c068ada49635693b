"""`correlator report mttr|dora`: the reports of the running server, as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from correlator.cli.common import DEFAULT_URL, TokenOption, UrlOption, call, fail, out

app = typer.Typer(help="Reports: MTTR and the DORA keys, with their definitions.", no_args_is_help=True)

FORMATS = ("table", "json", "csv", "md")
FormatOption = Annotated[str, typer.Option("--format", help="table, json, csv or md")]
SinceOption = Annotated[str, typer.Option(help="RFC 3339, or a duration back from now (30d)")]
UntilOption = Annotated[str | None, typer.Option(help="RFC 3339, or a duration back from now")]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _check_format(value: str) -> None:
    if value not in FORMATS:
        raise fail(f"--format: expected one of {', '.join(FORMATS)}, got {value!r}")


def _definitions(definition: dict[str, str]) -> None:
    for name, text in definition.items():
        out.print(f"  [bold]{name}[/bold]: {text}", highlight=False)


@app.command()
def mttr(
    since: SinceOption = "30d",
    until: UntilOption = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="service, severity, team or month")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="An incident id or label:<key>=<value>; repeats")] = None,
    format: FormatOption = "table",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Mean, median and p90 time to resolve; mean time to detect and to acknowledge; per group."""
    _check_format(format)
    params: dict[str, Any] = {"since": since, "until": until, "group_by": group_by, "exclude": exclude or None}
    if format in ("csv", "md"):
        text = call(url, token, lambda api: api.get_text("/api/v1/reports/mttr", {**params, "format": format}))
        sys.stdout.write(text)
        return
    report = call(url, token, lambda api: api.get("/api/v1/reports/mttr", params))
    if format == "json":
        out.print_json(data=report)
        return
    table = Table(title=f"MTTR, incidents opened {report['since'][:19]}Z to {report['until'][:19]}Z")
    for column in ("group", "incidents", "open", "mean", "median", "p90"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in report["groups"]:
        table.add_row(
            g["key"], str(g["incidents"]), str(g["open_incidents"]), _duration(g["mttr_s"]),
            _duration(g["median_ttr_s"]), _duration(g["p90_ttr_s"]),
        )  # fmt: skip
    table.add_row(
        "[bold]total[/bold]", str(report["incidents"]), str(report["open_incidents"]), _duration(report["mttr_s"]),
        _duration(report["median_ttr_s"]), _duration(report["p90_ttr_s"]),
    )  # fmt: skip
    out.print(table)
    out.print(
        f"mean time to detect {_duration(report['mean_ttd_s'])}, to acknowledge {_duration(report['mean_tta_s'])}"
    )
    _definitions(report["definition"])


@app.command()
def dora(
    since: SinceOption = "30d",
    until: UntilOption = None,
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
    environment: Annotated[str, typer.Option(help="The environment")] = "production",
    format: FormatOption = "table",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Deployment frequency, change failure rate, time to restore and lead time, with their DORA bands."""
    _check_format(format)
    params = {"since": since, "until": until, "service": service, "environment": environment}
    report = call(url, token, lambda api: api.get("/api/v1/reports/dora", params))
    bands = report["bands"]
    rate = report["change_failure_rate"]
    frequency = f"{report['deploys_per_day']:.2f}/day ({report['deploys']} deploys)"
    failures = "-" if rate is None else f"{rate * 100:.1f}% ({report['failed_deploys']} failed)"
    rows = [
        ("deployment frequency", frequency, bands["deployment_frequency"]),
        ("change failure rate", failures, bands["change_failure_rate"]),
        ("time to restore (median)", _duration(report["median_ttr_s"]), bands["time_to_restore"]),
        ("lead time for changes", _duration(report["lead_time_s"]), bands["lead_time"]),
    ]
    if format == "json":
        out.print_json(data=report)
    elif format in ("csv", "md"):
        header = ("key", "value", "band")
        if format == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerows([header, *((k, v, b or "") for k, v, b in rows)])
        else:
            lines = ["| key | value | band |", "|---|---|---|", *(f"| {k} | {v} | {b or '-'} |" for k, v, b in rows)]
            sys.stdout.write("\n".join(lines) + "\n")
    else:
        table = Table(title=f"DORA, {report['environment']}, {report['since'][:10]} to {report['until'][:10]}")
        for column in ("key", "value", "band"):
            table.add_column(column)
        for key, value, band in rows:
            table.add_row(key, value, band or "-")
        out.print(table)
        _definitions(report["definition"])
