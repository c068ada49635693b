"""Grafana's dashboard model (schemaVersion 41) for panels that query the ClickHouse plugin in raw SQL."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from dashboard_sql import ENVIRONMENTS, SERVICES_SEEN, TRACE_BY_ID

# The provisioned data source (provisioning/datasources/clickhouse.yaml): every panel names it by uid.
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
# Queries saved by plugin v4 or later: without it the plugin would migrate them as v3 queries.
PLUGIN_VERSION = "4.0.0"
SCHEMA_VERSION = 41
TAGS = ["correlator"]
DETAIL_UID = "correlator-service-detail"

# The plugin's formats (sqlds FormatQueryOption) and the editor's query types.
TIME_SERIES, TABLE, LOGS, TRACES = 0, 1, 2, 3
_QUERY_TYPE = {TIME_SERIES: "timeseries", TABLE: "table", LOGS: "logs", TRACES: "traces"}

Json = dict[str, Any]


def target(raw_sql: str, fmt: int, ref_id: str = "A") -> Json:
    """A raw-SQL query of the plugin."""
    return {
        "refId": ref_id,
        "datasource": DATASOURCE,
        "pluginVersion": PLUGIN_VERSION,
        "editorType": "sql",
        "format": fmt,
        "queryType": _QUERY_TYPE[fmt],
        "rawSql": raw_sql,
    }


# Data links.


def service_link() -> Json:
    """From a service name to Service detail for that service, keeping the time range."""
    service = "${__value.raw:percentencode}"
    return {
        "title": "Service detail",
        "url": f"/d/{DETAIL_UID}/service-detail?var-service={service}&${{__url_time_range}}",
    }


_TRACE_COLUMNS = (
    ("Timestamp", "time"), ("TraceId", "trace_id"), ("SpanId", "trace_span_id"),
    ("ParentSpanId", "trace_parent_span_id"), ("ServiceName", "trace_service_name"),
    ("SpanName", "trace_operation_name"), ("Duration", "trace_duration_time"), ("SpanAttributes", "trace_tags"),
    ("ResourceAttributes", "trace_service_tags"), ("StatusCode", "trace_status_code"), ("SpanKind", "trace_kind"),
    ("StatusMessage", "trace_status_message"), ("TraceState", "trace_state"),
)  # fmt: skip


def trace_query() -> Json:
    """The plugin's trace-ID query, as its own "View trace" links build it: builder options (OTel columns) so the
    editor can regenerate it, and the SQL it generates so Explore runs it at once."""
    meta = {
        "minimized": True, "isTraceIdMode": True, "traceId": "${__value.raw}", "traceDurationUnit": "nanoseconds",
        "otelEnabled": True, "otelVersion": "1.30.0", "traceEventsColumnPrefix": "Events",
        "traceLinksColumnPrefix": "Links", "traceTimestampTableSuffix": "_trace_id_ts",
        "hasTraceTimestampTable": True, "flattenNested": False,
    }  # fmt: skip
    return {
        "refId": "Trace ID",
        "datasource": DATASOURCE,
        "pluginVersion": PLUGIN_VERSION,
        "editorType": "builder",
        "format": TRACES,
        "rawSql": TRACE_BY_ID,
        "builderOptions": {
            "database": "otel",
            "table": "otel_traces",
            "queryType": "traces",
            "columns": [{"name": name, "hint": hint} for name, hint in _TRACE_COLUMNS],
            "filters": [],
            "orderBy": [],
            "limit": 1000,
            "meta": meta,
        },
    }


# Left as they are in the link's URL, so that Grafana fills them in when the link is followed.
LINK_VARIABLES = ("${__value.raw}", "${__from}", "${__to}")


def trace_link() -> Json:
    """From a trace id to Grafana's trace view: Explore with the ClickHouse data source's trace-ID query."""
    panes = {"trace": {"datasource": DATASOURCE["uid"], "queries": [trace_query()],
                       "range": {"from": "${__from}", "to": "${__to}"}}}  # fmt: skip
    encoded = quote(json.dumps(panes, separators=(",", ":")), safe="")
    for variable in LINK_VARIABLES:
        encoded = encoded.replace(quote(variable, safe=""), variable)
    return {"title": "Trace view", "url": f"/explore?schemaVersion=1&orgId=1&panes={encoded}"}


def _override(field: str, property_id: str, value: Any) -> Json:
    return {"matcher": {"id": "byName", "options": field}, "properties": [{"id": property_id, "value": value}]}


def units(**by_field: str) -> list[Json]:
    """Overrides giving columns their units."""
    return [_override(field, "unit", unit) for field, unit in by_field.items()]


def links(*fields: str) -> list[Json]:
    """Overrides linking columns on: trace ids (trace_id, traceID) to the trace view, the others, which name a
    service, to Service detail."""
    return [
        _override(field, "links", [trace_link() if field.lower().replace("_", "") == "traceid" else service_link()])
        for field in fields
    ]


# Panels.


class Layout:
    """Numbers panels and places them left to right, top to bottom, on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> tuple[int, Json]:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        grid = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        panel_id, self.next_id = self.next_id, self.next_id + 1
        return panel_id, grid


def _panel(
    at: Layout, kind: str, title: str, description: str, query: Json, size: tuple[int, int], **rest: Any
) -> Json:
    panel_id, grid = at.place(*size)
    field_config = {"defaults": rest.pop("defaults", {}), "overrides": rest.pop("overrides", [])}
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": [query],
        "fieldConfig": field_config,
        "options": rest.pop("options", {}),
    }


def series(
    at: Layout, title: str, description: str, raw_sql: str, unit: str, *, per: str | None = None,
    bars: bool = False, size: tuple[int, int] = (12, 8), overrides: list[Json] | None = None,
) -> Json:  # fmt: skip
    """A time series panel; a long frame (time, a label column `per`, values) draws one line per label."""
    custom: Json = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "auto"}
    if bars:
        custom = {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal", "group": "A"}}
    defaults: Json = {"unit": unit, "custom": custom}
    if per is not None:
        defaults["displayName"] = "${__field.labels." + per + "}"
    options = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
               "tooltip": {"mode": "multi", "sort": "desc"}}  # fmt: skip
    query = target(raw_sql, TIME_SERIES)
    return _panel(at, "timeseries", title, description, query, size, defaults=defaults, overrides=overrides or [],
                  options=options)  # fmt: skip


def table(
    at: Layout,
    title: str,
    description: str,
    raw_sql: str,
    *,
    linked: tuple[str, ...] = (),
    size: tuple[int, int] = (12, 8),
    **unit: str,
) -> Json:
    """A table; the `linked` columns (services, trace ids) link on."""
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    overrides = [*units(**unit), *links(*linked)]
    return _panel(at, "table", title, description, target(raw_sql, TABLE), size, overrides=overrides, options=options)


def stat(
    at: Layout, title: str, description: str, raw_sql: str, *, size: tuple[int, int] = (6, 4), **unit: str
) -> Json:
    """A stat panel: one tile per numeric column of the query's single row."""
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
               "graphMode": "none", "textMode": "value_and_name", "orientation": "auto"}  # fmt: skip
    return _panel(at, "stat", title, description, target(raw_sql, TABLE), size, overrides=units(**unit),
                  options=options)  # fmt: skip


def logs(at: Layout, title: str, description: str, raw_sql: str, *, size: tuple[int, int] = (24, 10)) -> Json:
    """A logs panel: time, body, level; the trace id opens the trace view from the log details."""
    options = {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True,
               "dedupStrategy": "none", "prettifyLogMessage": False}  # fmt: skip
    return _panel(at, "logs", title, description, target(raw_sql, LOGS), size, overrides=links("traceID", "service"),
                  options=options)  # fmt: skip


# Variables, annotations, dashboards.


def _query_variable(name: str, label: str, raw_sql: str, **rest: Any) -> Json:
    query = {"refId": name, "editorType": "sql", "rawSql": raw_sql, "pluginVersion": PLUGIN_VERSION,
             "format": TABLE, "queryType": "table"}  # fmt: skip
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "query": query,
            "definition": raw_sql, "sort": 1, "options": [], "hide": 0, **rest}  # fmt: skip


def service_variable(*, multi: bool) -> Json:
    """The services to show: many (All by default) or one; refreshed when the time range changes."""
    current = {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {}
    return _query_variable("service", "Service", SERVICES_SEEN, refresh=2, multi=multi, includeAll=multi,
                           current=current)  # fmt: skip


def environment_variable() -> Json:
    """The environment of the DORA keys, production by default."""
    current = {"selected": True, "text": "production", "value": "production"}
    return _query_variable("environment", "Environment", ENVIRONMENTS, refresh=1, multi=False, includeAll=False,
                           current=current)  # fmt: skip


def period_variable() -> Json:
    """How long a bucket of the MTTR trend is."""
    options = [{"selected": value == "week", "text": value, "value": value} for value in ("day", "week")]
    return {"name": "period", "label": "MTTR per", "type": "custom", "query": "day,week", "options": options,
            "current": {"selected": True, "text": "week", "value": "week"}, "multi": False, "includeAll": False,
            "hide": 0}  # fmt: skip


def annotation(name: str, raw_sql: str) -> Json:
    """Annotations from a query returning time, timeEnd, title, text and tags (comma-separated)."""
    query = {"refId": "annotation", "editorType": "sql", "rawSql": raw_sql, "pluginVersion": PLUGIN_VERSION}
    return {"name": name, "datasource": DATASOURCE, "enable": True, "iconColor": "#5794F2", "target": query}


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], *, variables: list[Json] | None = None,
    annotations: list[Json] | None = None, time_from: str = "now-6h",
) -> Json:  # fmt: skip
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
               "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}  # fmt: skip
    menu = {"title": "Correlator", "type": "dashboards", "tags": TAGS, "asDropdown": True, "includeVars": False,
            "keepTime": True}  # fmt: skip
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "utc",
        "time": {"from": time_from, "to": "now"},
        "refresh": "1m",
        "annotations": {"list": [builtin, *(annotations or [])]},
        "templating": {"list": variables or []},
        "links": [menu],
        "panels": panels,
    }
