"""`correlator trace ID`: one trace as a tree of spans with their logs, then its exemplars and deploys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.text import Text
from rich.tree import Tree

from correlator.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, call, cell, out, when

ERROR_STYLE = "red"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _clock(value: str) -> str:
    """A time inside a trace to the millisecond: `08:00:00.125`."""
    try:
        return _at(value).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return value


def _ms(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".") + " ms"


def _span_label(span: dict[str, Any]) -> Text:
    failed = span["status_code"] == "Error"
    parts = [cell(span["service"]), cell(span["name"]), span["kind"], _ms(span["duration_ms"]), span["status_code"]]
    if span["status_message"]:
        parts[-1] += f": {span['status_message']}"
    # Text, not markup: span names like "GET [id]" must print as they are.
    return Text(" · ".join(parts), style=ERROR_STYLE if failed else "")


def _event_label(event: dict[str, Any]) -> Text:
    attributes = event["attributes"]
    detail = ": ".join(v for v in (attributes.get("exception.type"), attributes.get("exception.message")) if v)
    text = f"event {event['name']} at {_clock(event['at'])}" + (f" · {detail}" if detail else "")
    return Text(text, style=ERROR_STYLE if event["name"] == "exception" else "dim")


def _log_label(log: dict[str, Any]) -> Text:
    severity = log["severity_text"] or (f"severity {log['severity_number']}" if log["severity_number"] else "-")
    failed = (log["severity_number"] or 0) >= 17
    text = f"log {_clock(log['timestamp'])} {severity} · {cell(log['service'])} · {cell(log['body'])}"
    return Text(text, style=ERROR_STYLE if failed else "")


def trace_tree(trace: dict[str, Any]) -> Tree:
    """The trace as a rich Tree: spans under their parents (orphans under the first root), logs under spans."""
    state = "error" if trace["error"] else "ok"
    root = Tree(
        Text(
            f"trace {trace['trace_id']} · {when(trace['started_at'])} · {_ms(trace['duration_ms'])} · "
            f"{len(trace['spans'])} spans · {', '.join(trace['services'])} · {state}",
            style="bold red" if trace["error"] else "bold",
        )
    )
    spans: list[dict[str, Any]] = trace["spans"]
    ids = {span["span_id"] for span in spans}
    first_root = next((span["span_id"] for span in spans if span["parent_span_id"] is None), None)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"]
        if parent is not None and parent not in ids:
            parent = first_root  # an orphan hangs under the root, as the API orders it
        children.setdefault(parent, []).append(span)
    logs_by_span: dict[str | None, list[dict[str, Any]]] = {}
    for log in trace["logs"]:
        logs_by_span.setdefault(log["span_id"], []).append(log)

    # Iterative, not recursive: a trace may nest deeper than Python's recursion limit.
    pending = [(root.add(_span_label(span)), span) for span in children.get(None, [])]
    placed = {span["span_id"] for _, span in pending}
    while pending:
        node, span = pending.pop(0)
        # A span's events, logs and calls in the order they happened.
        items: list[tuple[datetime, int, Text | dict[str, Any]]] = [
            *((_at(e["at"]), 0, _event_label(e)) for e in span["events"]),
            *((_at(log["timestamp"]), 1, _log_label(log)) for log in logs_by_span.pop(span["span_id"], [])),
            *((_at(child["start"]), 2, child) for child in children.get(span["span_id"], [])),
        ]
        for _, _, item in sorted(items, key=lambda entry: entry[:2]):
            if isinstance(item, Text):
                node.add(item)
            elif item["span_id"] not in placed:
                placed.add(item["span_id"])
                pending.append((node.add(_span_label(item)), item))
    for span in spans:  # caught in a parent cycle (bad data): shown, not lost
        if span["span_id"] not in placed:
            placed.add(span["span_id"])
            root.add(_span_label(span))
    loose = [log for logs in logs_by_span.values() for log in logs]
    if loose:
        branch = root.add(Text("logs outside any span of the trace", style="bold"))
        for log in sorted(loose, key=lambda entry: _at(entry["timestamp"])):
            branch.add(_log_label(log))
    if trace["exemplars"]:
        branch = root.add(Text("exemplars", style="bold"))
        for e in trace["exemplars"]:
            branch.add(Text(f"{e['metric']} · {cell(e['service'])} · {e['value']:g} · {when(e['at'])}"))
    if trace["deploys"]:
        branch = root.add(Text("deploys", style="bold"))
        for d in trace["deploys"]:
            deploy = d["deploy_id"] or "no stored deploy"
            branch.add(Text(f"{d['service']} · {cell(d['version'])} · {deploy}"))
    return root


def trace(
    trace_id: Annotated[str, typer.Argument(help="The trace id: 32 hex digits, any case")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """One trace: its spans as a tree with their logs, its exemplars, and the deploy each service ran."""
    answer = call(url, token, lambda api: api.get(f"/api/v1/traces/{quote(trace_id, safe='')}"))
    if json:
        out.print_json(data=answer)
        return
    out.print(trace_tree(answer))
