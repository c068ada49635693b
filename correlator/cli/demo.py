"""`correlator demo`: replay the shop's bad deploy into a correlator and show what it found."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from correlator.cli.client import ApiClient, ClientError
from correlator.cli.common import TokenOption, err, fail, out, when
from correlator.cli.health import _list_table


def _own_server(port: int) -> tuple[Any, str]:
    """A correlator on a fresh temporary store and a free port (no OTLP ports: the demo sends to the API port)."""
    from correlator.api.server import Server
    from correlator.settings import Settings

    data = tempfile.mkdtemp(prefix="correlator-demo-")
    settings = Settings(
        clickhouse_dsn=f"chdb://{data}/data", http_port=port, otlp_http_port=0, otlp_grpc_port=0, api_tokens=""
    )
    return Server(settings, log_level="warning").start(), data


def _report(api: ApiClient, story: Any, seconds: float) -> None:
    incident = api.get(f"/api/v1/incidents/{story.incident_id}")
    out.rule("[bold]What the correlator found[/bold]")
    out.print(
        f"[bold]{incident['title']}[/bold] on {incident['service']} ({incident['severity']}), opened "
        f"{when(incident['opened_at'])}, resolved {when(incident['resolved_at'])}: "
        f"{incident['time_to_resolve_s'] / 60:.0f} min to resolve",
        highlight=False,
    )
    out.print(
        f"impact began {when(incident['impact_started_at'])}; affected: {', '.join(incident['affected_services'])}"
    )
    if incident["suspects"]:
        top = incident["suspects"][0]
        out.print(
            f"\n[bold]Top suspect[/bold]: {top['service']} {top['version']} ({top['deploy_id']}), "
            f"score {top['score']:.2f}, {top['relation']}",
            highlight=False,
        )
        for line in top["evidence"]:
            out.print(f"  - {line.strip()}", highlight=False)
        for other in incident["suspects"][1:4]:
            out.print(f"  also considered: {other['service']} {other['version']} (score {other['score']:.2f})")
    services = api.get("/api/v1/services", {"since": "2h"})["services"]
    out.print(_list_table(services, "services, last 2 hours"))
    mttr = api.get("/api/v1/reports/mttr", {"since": "30d"})
    mean = mttr["mttr_s"]
    out.print(
        f"MTTR over 30 days: {mttr['incidents']} incident(s), mean time to resolve "
        f"{'-' if mean is None else f'{mean / 60:.1f} min'} ({mttr['definition']['time_to_resolve']})",
        highlight=False,
    )
    out.print(f"(replayed in {seconds:.0f} s)")


def _next_steps(url: str, story: Any, trace_id: str | None) -> None:
    out.rule("[bold]Try next[/bold]")
    lines = [
        f"correlator incidents show {story.incident_id} --url {url}",
        f"correlator deploys show {story.bad_deploy_id} --url {url}",
        f"correlator health checkout --since 2h --url {url}",
        f"correlator topology --since 2h --url {url}",
        f"correlator report mttr --group-by service --url {url}",
        f"correlator report dora --url {url}",
    ]
    if trace_id:
        lines.append(f"correlator trace {trace_id} --url {url}")
    for line in lines:
        out.print(f"  {line}", highlight=False, soft_wrap=True)
    out.print(f"  {url}/docs  (the HTTP API, interactive)", highlight=False)


def demo(
    url: Annotated[
        str | None, typer.Option("--url", help="Replay into a running correlator instead of a new one")
    ] = None,
    token: TokenOption = None,
    seed: Annotated[int, typer.Option(help="The replay's seed: the same seed tells the same story")] = 7,
    port: Annotated[int, typer.Option(help="The port of the demo's own correlator (0: any free port)")] = 0,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop right after the report (for scripts and tests)")
    ] = False,
) -> None:
    """Replay a shop with a bad deploy, an alert and a rollback; show the incident, its suspect, health and MTTR."""
    from correlator.demo.scenario import Shop, play

    server, data = (None, None) if url else _own_server(port)
    target: str = server.url() if server is not None else str(url)
    if server is not None:
        err.print(f"correlator: a demo store in {data}, serving on {target}", highlight=False)
    started = time.monotonic()
    try:
        shop = Shop(target, token, seed, datetime.now(UTC))
        story = None
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} min"))
        with Progress(*columns, TimeElapsedColumn(), console=err, transient=False) as progress:
            task = progress.add_task("deploys", total=100)
            for description, done, told in play(shop):
                progress.update(task, description=description, completed=done)
                story = told or story
        assert story is not None
        api = ApiClient(target, token, timeout_s=120)
        _report(api, story, time.monotonic() - started)
        incident = api.get(f"/api/v1/incidents/{story.incident_id}")
        _next_steps(target, story, (incident["exemplar_trace_ids"] or [None])[0])
    except (ClientError, RuntimeError) as e:
        raise fail(str(e)) from None
    finally:
        if server is not None and exit_after:
            server.stop()
            shutil.rmtree(str(data), ignore_errors=True)
    if server is None or exit_after:
        return
    err.print("serving until Ctrl-C", highlight=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        shutil.rmtree(str(data), ignore_errors=True)
