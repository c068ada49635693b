"""What every CLI command shares: consoles, the --url/--token/--json options, failing with a message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from correlator.cli.client import ApiClient, ClientError

out = Console()
err = Console(stderr=True, soft_wrap=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="CORRELATOR_URL", help="The running correlator to talk to.")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="CORRELATOR_TOKEN", help="A bearer token (read or write).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
DEFAULT_URL = "http://127.0.0.1:8080"


def fail(message: str) -> typer.Exit:
    """Print an error on stderr; the caller raises the returned Exit (exit code 1)."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def call(url: str, token: str | None, action: Callable[[ApiClient], Any]) -> Any:
    """Run one request against the server; a refusal becomes the server's message and exit code 1."""
    try:
        return action(ApiClient(url, token))
    except ClientError as e:
        raise fail(str(e)) from None


def when(value: str | None) -> str:
    """An API time for a table cell: `2026-11-26 08:00:00Z`, or a dash."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return value


def cell(value: object) -> str:
    """A table cell: a dash for null."""
    return "-" if value is None or value == "" else str(value)
