"""`correlator`: serve, migrate, and the commands that talk to a running server."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.table import Table

from correlator.cli import demo, deploys, health, incidents, reports, topology, trace
from correlator.cli.client import ApiClient, ClientError
from correlator.cli.common import JsonOption, TokenOption, UrlOption, err, fail, out

app = typer.Typer(help="The observability correlation service.", no_args_is_help=True, add_completion=False)
app.add_typer(deploys.app, name="deploys")
app.add_typer(incidents.app, name="incidents")
app.add_typer(reports.app, name="report")
app.command("health")(health.health)
app.command("trace")(trace.trace)
app.command("topology")(topology.topology)
app.command("demo")(demo.demo)


@app.command()
def serve(
    bind: Annotated[str | None, typer.Option(help="Address to listen on [env CORRELATOR_BIND; 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="API and OTLP/HTTP port [env CORRELATOR_HTTP_PORT; 8080]")] = None,
    otlp_http_port: Annotated[
        int | None, typer.Option(help="OTLP/HTTP port, 0 = off [env CORRELATOR_OTLP_HTTP_PORT; 4318]")
    ] = None,
    otlp_grpc_port: Annotated[
        int | None, typer.Option(help="OTLP/gRPC port, 0 = off [env CORRELATOR_OTLP_GRPC_PORT; 4317]")
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option(help="chdb:///abs/dir or http(s)://user:pass@host:8123/db [env CORRELATOR_CLICKHOUSE_DSN]"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the receivers and the API on the store (embedded chDB in ./.correlator/data by default)."""
    from correlator.api.server import Server
    from correlator.errors import CorrelatorError
    from correlator.service.memory import limit_malloc_arenas
    from correlator.settings import load_settings

    limit_malloc_arenas()  # before the server's threads: see correlator/service/memory.py
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(
            bind=bind,
            http_port=port,
            otlp_http_port=otlp_http_port,
            otlp_grpc_port=otlp_grpc_port,
            clickhouse_dsn=dsn,
        )
        server = Server(settings, log_level=log_level)
        err.print(
            f"correlator: store {settings.clickhouse_dsn} (database {settings.clickhouse_database}); "
            f"API and OTLP/HTTP on http://{settings.bind}:{settings.http_port}"
            + (f", OTLP/HTTP on :{settings.otlp_http_port}" if settings.otlp_http_port else "")
            + (f", OTLP/gRPC on :{settings.otlp_grpc_port}" if settings.otlp_grpc_port else ""),
            highlight=False,
        )
        server.run()
    except CorrelatorError as e:
        raise fail(e.message) from None
    except (OSError, ValueError) as e:
        raise fail(str(e)) from None


@app.command()
def migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every statement instead of applying it.")] = False,
    dsn: Annotated[str | None, typer.Option(help="The store [env CORRELATOR_CLICKHOUSE_DSN]")] = None,
    cluster: Annotated[
        str | None, typer.Option(help="Create the tables ON CLUSTER this [env CORRELATOR_CLICKHOUSE_CLUSTER]")
    ] = None,
) -> None:
    """Create or update the schema. Refuses, naming the PID, while a server holds the embedded store."""
    from correlator.errors import CorrelatorError
    from correlator.settings import load_settings
    from correlator.store import Store, StoreConfig
    from correlator.store.migrate import migrate as apply_migrations
    from correlator.store.migrate import plan

    settings = load_settings(clickhouse_dsn=dsn, clickhouse_cluster=cluster)
    if dry_run:
        # Every statement is idempotent (IF NOT EXISTS), so the full plan is what a fresh store would run.
        for statement in plan(settings.clickhouse_database, cluster=settings.clickhouse_cluster):
            sys.stdout.write(f"-- {statement.version:04d} {statement.name}\n{statement.sql};\n\n")
        return
    try:
        store = Store(StoreConfig(settings.clickhouse_dsn, settings.clickhouse_database))
        try:
            applied = apply_migrations(store, cluster=settings.clickhouse_cluster)
        finally:
            store.close()
    except CorrelatorError as e:
        raise fail(e.message) from None
    err.print(f"applied migrations {applied}" if applied else "the schema is up to date")


@app.command()
def status(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = None, json: JsonOption = False) -> None:
    """What the running server's store holds: schema version and rows per table."""
    try:
        info = ApiClient(url, token).get("/api/v1/store")
    except ClientError as e:
        raise fail(str(e)) from None
    if json:
        out.print_json(data=info)
        return
    table = Table(title=f"{info['dsn']} (database {info['database']}, schema {info['schema_version']})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for row in info["tables"]:
        table.add_row(row["table"], f"{row['rows']:,}")
    out.print(table)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the HTTP API (committed as docs/openapi.json)."""
    import json as json_module

    from correlator.api.openapi import openapi_document

    sys.stdout.write(json_module.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
