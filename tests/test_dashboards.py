"""The Grafana dashboards: their JSON against Grafana's model and the provisioning, and every panel's SQL run in the
engine, macros expanded for a fixed range as the ClickHouse plugin expands them, against a seeded scenario."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import yaml

from correlator.api.server import Server
from tests import dashboard_support as ds
from tests.conftest import query

OVERVIEW, DETAIL = "correlator-service-overview", "correlator-service-detail"
INCIDENTS, MESH = "correlator-incidents", "correlator-mesh"
DASHBOARDS = ds.load_dashboards()

# What each panel's query returns: its columns, by (dashboard uid, panel title).
COLUMNS = {
    (OVERVIEW, "Requests per second"): ["time", "service", "requests_per_s"],
    (OVERVIEW, "Error ratio"): ["time", "service", "error_ratio"],
    (OVERVIEW, "Latency p95"): ["time", "service", "p95_ms"],
    (OVERVIEW, "Services"): ["service", "requests", "requests_per_s", "error_ratio", "p95_ms"],
    (OVERVIEW, "Deploys"): ["started_at", "service", "environment", "version", "previous_version", "status",
                            "is_rollback", "source", "deploy_id", "url"],
    (OVERVIEW, "Error logs"): ["timestamp", "body", "level", "service", "traceID", "spanID"],
    (DETAIL, "Requests and errors per second"): ["time", "requests_per_s", "errors_per_s"],
    (DETAIL, "Error ratio"): ["time", "error_ratio"],
    (DETAIL, "Latency"): ["time", "p50_ms", "p95_ms", "p99_ms"],
    (DETAIL, "Top endpoints"): ["endpoint", "requests", "error_ratio", "p95_ms"],
    (DETAIL, "Top errors"): ["error_type", "message", "count", "last_seen", "trace_id"],
    (DETAIL, "Versions over time"): ["time", "version", "records"],
    (DETAIL, "Version runs"): ["first_seen", "last_seen", "environment", "version", "deployment_id", "deploy_id",
                               "records"],
    (DETAIL, "Callers"): ["caller", "requests", "error_ratio", "p95_ms"],
    (DETAIL, "Callees"): ["callee", "seen", "requests", "error_ratio", "p95_ms"],
    (DETAIL, "Deploys"): ["started_at", "finished_at", "environment", "version", "previous_version", "status",
                          "is_rollback", "rollback_of", "source", "deploy_id", "url"],
    (DETAIL, "Incidents"): ["opened_at", "incident_id", "title", "service", "severity", "status", "resolved_at",
                            "time_to_resolve_s", "impact_started_at", "cause_deploy_id", "cause_deploy", "cause_from",
                            "trace_id"],
    (DETAIL, "Error logs"): ["timestamp", "body", "level", "service", "traceID", "spanID"],
    (INCIDENTS, "Deployment frequency"): ["deploys", "deploys_per_day"],
    (INCIDENTS, "Change failure rate"): ["deploys", "failed_deploys", "change_failure_rate"],
    (INCIDENTS, "Lead time for changes"): ["lead_time_s", "deploys_with_commit_time"],
    (INCIDENTS, "Time to restore"): ["median_ttr_s", "resolved_incidents"],
    (INCIDENTS, "MTTR"): ["incidents", "open_incidents", "mttr_s", "median_ttr_s"],
    (INCIDENTS, "MTTR trend"): ["time", "mean_ttr_s", "median_ttr_s", "resolved_incidents"],
    (INCIDENTS, "Incidents"): ["opened_at", "incident_id", "title", "service", "severity", "status", "resolved_at",
                               "time_to_resolve_s", "impact_started_at", "cause_deploy_id", "cause_deploy",
                               "cause_from", "trace_id"],
    (INCIDENTS, "Deploys counted for DORA"): ["started_at", "service", "version", "status", "is_rollback", "counted",
                                              "failed", "lead_time_s", "deploy_id"],
    (MESH, "mTLS coverage"): ["mtls_coverage", "requests"],
    (MESH, "mTLS coverage by destination"): ["destination", "mtls_coverage", "requests"],
    (MESH, "Requests per second per edge"): ["time", "edge", "requests_per_s"],
    (MESH, "Edges"): ["mesh", "source", "destination", "requests", "error_ratio", "mtls_share"],
    (MESH, "Error ratio per edge"): ["time", "edge", "error_ratio"],
}  # fmt: skip


# The JSON model and the provisioning.


def test_the_dashboard_files_are_what_build_py_writes() -> None:
    for path, text in ds.builder().rendered():
        assert path.read_text() == text, f"{path.name} is stale: run .venv/bin/python dashboards/build.py"
    assert {p.name for p in ds.dashboard_files()} == set(ds.builder().DASHBOARDS)


def test_every_dashboard_follows_grafanas_model() -> None:
    assert len(DASHBOARDS) == len(ds.dashboard_files()) == 4  # uids are unique across the files
    for uid, dashboard in DASHBOARDS.items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid)
        assert dashboard["schemaVersion"] >= 39
        assert dashboard["title"].startswith("Correlator / ")
        panels = list(ds.panels(dashboard))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), uid
        for panel in panels:
            grid = panel["gridPos"]
            assert set(grid) == {"h", "w", "x", "y"}, panel["title"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["rawSql"].strip() for t in panel["targets"]), panel["title"]
        titles = [p["title"] for p in panels]
        assert len(titles) == len(set(titles)), uid


def datasources_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every data source reference anywhere in a dashboard."""
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasources_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources_in(item)


def test_every_panel_query_variable_and_annotation_reads_the_provisioned_datasource() -> None:
    source = ds.datasource()
    assert source["type"] == "grafana-clickhouse-datasource"
    for dashboard in DASHBOARDS.values():
        for panel in ds.panels(dashboard):
            assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
                assert target["editorType"] == "sql"
                assert target["pluginVersion"] >= "4"  # a v4 query: the plugin does not migrate it
        references = list(datasources_in({k: v for k, v in dashboard.items() if k != "panels"}))
        plugin = [r for r in references if r.get("type") != "grafana"]
        assert plugin, dashboard["uid"]
        assert all(r["uid"] == source["uid"] for r in plugin)


def test_the_provisioning_matches_schema_md() -> None:
    source = ds.datasource()
    data = source["jsonData"]
    assert source["uid"] == "clickhouse"
    assert data["defaultDatabase"] == "otel"
    for signal, table in (("logs", "otel_logs"), ("traces", "otel_traces")):
        # 1.30.0 (the "latest" of current plugins) reads otel_logs as exporters from v0.151 write it, without the
        # TimestampTime column the 1.29.0 mapping filters on.
        assert (data[signal]["otelEnabled"], data[signal]["otelVersion"]) == (True, "1.30.0")
        assert data[signal]["defaultTable"] == table
    assert data["logs"]["timeColumn"] == "Timestamp"
    assert "filterTimeColumn" not in data["logs"]
    assert data["traces"]["traceTimestampTableSuffix"] == "_trace_id_ts"
    text = (ds.PROVISIONING / "datasources" / "clickhouse.yaml").read_text()
    assert "otel_metrics_exponential_histogram" in text  # the exporter's name, said where the plugin's differs
    provider = yaml.safe_load((ds.PROVISIONING / "dashboards" / "correlator.yaml").read_text())["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_kubernetes_mounts_every_dashboard() -> None:
    kustomization = yaml.safe_load((ds.ROOT / "deploy/kubernetes/base/grafana/kustomization.yaml").read_text())
    (generator,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "grafana-dashboards"]
    listed = dict(entry.split("=", 1) for entry in generator["files"])
    assert set(listed) == {p.name for p in ds.dashboard_files()}
    for name, path in listed.items():
        assert (ds.ROOT / "deploy/kubernetes/base/grafana" / path).resolve() == ds.DASHBOARDS / name


# Links.


def links_of(panel: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for override in panel["fieldConfig"]["overrides"]:
        for item in override["properties"]:
            if item["id"] == "links":
                found[override["matcher"]["options"]] = item["value"]
    return found


def test_service_names_link_to_service_detail() -> None:
    detail = DASHBOARDS[DETAIL]
    assert [v["name"] for v in detail["templating"]["list"]] == ["service"]
    for dashboard in DASHBOARDS.values():
        for panel in ds.panels(dashboard):
            for field, (link,) in links_of(panel).items():
                if field in {"service", "caller", "callee", "source", "destination"}:
                    url = urlsplit(link["url"])
                    assert url.path == f"/d/{DETAIL}/service-detail"
                    assert parse_qs(url.query)["var-service"] == ["${__value.raw:percentencode}"]
                    assert "${__url_time_range}" in link["url"]


def test_every_trace_id_and_service_column_links_on() -> None:
    for (uid, title), columns in COLUMNS.items():
        panel = next(p for p in ds.panels(DASHBOARDS[uid]) if p["title"] == title)
        if panel["type"] == "timeseries":
            continue  # series are labelled by service, and have no cells to click
        # A deploy's `source` is the platform that reported it; on the mesh, source and destination are services.
        named = {"trace_id", "traceID", "service", "caller", "callee"} | (
            {"source", "destination"} if uid == MESH else set()
        )
        wanted = set(columns) & named
        assert set(links_of(panel)) == wanted, (uid, title)


def trace_link_query(panel: dict[str, Any], field: str = "trace_id") -> dict[str, Any]:
    """The query a trace-id link opens in Explore."""
    (link,) = links_of(panel)[field]
    url = urlsplit(link["url"])
    assert url.path == "/explore"
    panes = json.loads(unquote(parse_qs(url.query)["panes"][0]))
    (pane,) = panes.values()
    assert pane["datasource"] == ds.datasource()["uid"]
    assert pane["range"] == {"from": "${__from}", "to": "${__to}"}
    (trace_query,) = pane["queries"]
    return dict(trace_query)


def test_trace_ids_link_to_the_trace_view_in_explore() -> None:
    panel = next(p for p in ds.panels(DASHBOARDS[DETAIL]) if p["title"] == "Top errors")
    trace_query = trace_link_query(panel)
    assert trace_query["datasource"]["uid"] == ds.datasource()["uid"]
    assert trace_query["format"] == 3  # a trace frame: Grafana's trace view
    options = trace_query["builderOptions"]
    assert (options["queryType"], options["meta"]["isTraceIdMode"]) == ("traces", True)
    assert options["meta"]["traceId"] == "${__value.raw}"
    assert "'${__value.raw}'" in trace_query["rawSql"]
    logs_panel = next(p for p in ds.panels(DASHBOARDS[OVERVIEW]) if p["title"] == "Error logs")
    assert trace_link_query(logs_panel, "traceID") == trace_query


# The macro expander.

RANGE = ds.TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 2, tzinfo=UTC), 30)


@pytest.mark.parametrize(
    ("sql", "variables", "expected"),
    [
        pytest.param("WHERE $__timeFilter(Timestamp)", {},
                     "WHERE Timestamp >= toDateTime(1767225600) AND Timestamp <= toDateTime(1767232800)",
                     id="timeFilter"),
        pytest.param("$__timeFilter_ms(t)", {},
                     "t >= fromUnixTimestamp64Milli(1767225600000) AND t <= fromUnixTimestamp64Milli(1767232800000)",
                     id="timeFilter_ms"),
        pytest.param("$__fromTime, $__toTime, $__fromTime_ms", {},
                     "toDateTime(1767225600), toDateTime(1767232800), fromUnixTimestamp64Milli(1767225600000)",
                     id="from-to"),
        pytest.param("$__timeInterval(Minute) AS time, count() / $__interval_s", {},
                     "toStartOfInterval(toDateTime(Minute), INTERVAL 30 second) AS time, count() / 30",
                     id="interval"),
        pytest.param("$__dateFilter(d)", {}, "d >= toDate('2026-01-01') AND d <= toDate('2026-01-01')", id="date"),
        pytest.param("WHERE $__conditionalAll(s IN (${service:sqlstring}), $service)", {"service": "$__all"},
                     "WHERE 1=1", id="conditionalAll-all"),
        pytest.param("WHERE $__conditionalAll(s IN (${service:sqlstring}), $service)", {"service": ["a", "o'b"]},
                     "WHERE s IN ('a','o''b')", id="conditionalAll-values"),
        pytest.param("x = ${env:sqlstring} AND y = '$env' AND z = ${env} AND w IN ($many)",
                     {"env": "prod", "many": ["a", "b"]}, "x = 'prod' AND y = 'prod' AND z = prod AND w IN ('a','b')",
                     id="variables"),
    ],
)  # fmt: skip
def test_the_expander_writes_what_the_plugin_sends(sql: str, variables: ds.Variables, expected: str) -> None:
    assert ds.expand(sql, RANGE, variables) == expected


def test_the_expander_refuses_what_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="a macro the expander does not know"):
        ds.expand("$__timeGroup(t, 1m)", RANGE, {})
    with pytest.raises(AssertionError, match="which the test gave no value"):
        ds.expand("x = ${missing}", RANGE, {})


# Every panel against the seeded scenario.


@pytest.fixture(scope="module")
def scenario(server: Server) -> ds.Scenario:
    # Midnight UTC two days back plus an hour: a range of its own, within one day and one week.
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    seeded = ds.Scenario(start=day + timedelta(hours=1), prefix=f"d{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=server.url(), timeout=120) as client:
        ds.seed(client, seeded)
    return seeded


@pytest.fixture(scope="module")
def tables(server: Server) -> set[str]:
    return {str(row[0]) for row in query(server, "SELECT name FROM system.tables WHERE database = 'otel'")}


def variables_for(uid: str, scenario: ds.Scenario) -> dict[str, str | list[str]]:
    """What a person looking at the scenario would choose."""
    if uid == DETAIL:
        return {"service": scenario.checkout}
    return {"service": [scenario.front, scenario.checkout], "environment": scenario.environment, "period": "day"}


class Results:
    """Runs the dashboards' queries as Grafana would for the scenario's range."""

    def __init__(self, server: Server, scenario: ds.Scenario, tables: set[str]) -> None:
        self.server, self.scenario, self.tables = server, scenario, tables

    def run(self, raw_sql: str, uid: str, **variables: str | list[str]) -> tuple[list[str], list[dict[str, Any]]]:
        chosen = {**variables_for(uid, self.scenario), **variables}
        sql = ds.in_database(ds.expand(raw_sql, self.scenario.time_range, chosen), "otel", self.tables)
        columns = [str(row[0]) for row in query(self.server, f"DESCRIBE ({sql})")]
        return columns, [dict(zip(columns, row, strict=True)) for row in query(self.server, sql)]

    def panel(self, uid: str, title: str, **variables: str | list[str]) -> list[dict[str, Any]]:
        panel = next(p for p in ds.panels(DASHBOARDS[uid]) if p["title"] == title)
        columns, rows = self.run(panel["targets"][0]["rawSql"], uid, **variables)
        assert columns == COLUMNS[(uid, title)]
        return rows


@pytest.fixture(scope="module")
def results(server: Server, scenario: ds.Scenario, tables: set[str]) -> Results:
    return Results(server, scenario, tables)


def test_every_panel_has_its_expected_columns() -> None:
    panels = {(uid, p["title"]) for uid, d in DASHBOARDS.items() for p in ds.panels(d)}
    assert panels == set(COLUMNS)


@pytest.mark.parametrize(("uid", "title"), list(COLUMNS), ids=[f"{u.split('-')[-1]}:{t}" for u, t in COLUMNS])
def test_every_panel_runs_and_returns_rows(results: Results, uid: str, title: str) -> None:
    assert results.panel(uid, title)  # the scenario gives every panel something to show


def test_variables_and_annotations_run(results: Results, scenario: ds.Scenario) -> None:
    for uid, dashboard in DASHBOARDS.items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                _, rows = results.run(variable["query"]["rawSql"], uid)
                values = {next(iter(r.values())) for r in rows}
                expected = scenario.environment if variable["name"] == "environment" else scenario.checkout
                assert expected in values, (uid, variable["name"])
        (annotation,) = [a for a in dashboard["annotations"]["list"] if "target" in a]
        columns, rows = results.run(annotation["target"]["rawSql"], uid)
        assert columns == ["time", "timeEnd", "title", "text", "tags"]
        assert rows, uid
    _, deploys = results.run(DASHBOARDS[OVERVIEW]["annotations"]["list"][1]["target"]["rawSql"], OVERVIEW)
    tags = sorted(r["tags"] for r in deploys)
    env = scenario.environment
    assert tags == sorted([
        f"deploy,{scenario.front},{env},rolled_back", f"deploy,{scenario.front},{env},succeeded",
        f"deploy,{scenario.checkout},{env},succeeded", f"deploy,{scenario.checkout},{env},failed",
        f"deploy,{scenario.checkout},{env},succeeded",
    ])  # fmt: skip


# What the panels show, exactly.


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_service_overview(results: Results, scenario: ds.Scenario) -> None:
    s = scenario
    services = by(results.panel(OVERVIEW, "Services"), "service")
    assert set(services) == {s.front, s.checkout}
    assert services[s.front]["requests"] == services[s.checkout]["requests"] == 180
    assert services[s.front]["error_ratio"] == 0
    assert services[s.checkout]["error_ratio"] == pytest.approx(30 / 180)
    assert services[s.checkout]["requests_per_s"] == pytest.approx(180 / 7200)
    rate = results.panel(OVERVIEW, "Requests per second")
    assert sum(r["requests_per_s"] for r in rate if r["service"] == s.checkout) * 60 == pytest.approx(180)
    ratios = {r["time"]: r["error_ratio"] for r in results.panel(OVERVIEW, "Error ratio") if r["service"] == s.checkout}
    # Three requests a minute, every other one a POST /checkout, which 2.0 fails from minute 40.
    bad = s.at(40).replace(tzinfo=None)
    assert {round(r, 3) for t, r in ratios.items() if t < bad} == {0}
    assert {round(r, 3) for t, r in ratios.items() if t >= bad} == {0.333, 0.667}
    logs = results.panel(OVERVIEW, "Error logs")
    assert len(logs) == 30
    assert {(r["level"], r["service"]) for r in logs} == {("ERROR", s.checkout)}
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["traceID"]) for r in logs)
    # All services, chosen with All: the others' rows come too, the scenario's are the same.
    every = by(results.panel(OVERVIEW, "Services", service="$__all"), "service")
    assert every[s.checkout] == services[s.checkout]


def test_service_detail(results: Results, scenario: ds.Scenario) -> None:
    s = scenario
    endpoints = by(results.panel(DETAIL, "Top endpoints"), "endpoint")
    assert {k: (v["requests"], v["error_ratio"]) for k, v in endpoints.items()} == {
        "POST /checkout": (90, pytest.approx(30 / 90)), "GET /cart": (90, 0),
    }  # fmt: skip
    (error,) = results.panel(DETAIL, "Top errors")
    assert (error["error_type"], error["message"], error["count"]) == (
        "PaymentError", "card <n> declined for order <n>", 30,
    )  # fmt: skip
    versions: dict[str, int] = {}
    for row in results.panel(DETAIL, "Versions over time"):
        versions[row["version"]] = versions.get(row["version"], 0) + row["records"]
    assert versions == {"1.0": 120 + 40, "2.0": 60 + 20}  # server spans, and client spans to payments
    runs = by(results.panel(DETAIL, "Version runs"), "version")
    assert {v: r["deploy_id"] for v, r in runs.items()} == {
        "1.0": s.deploys["checkout 1.0"], "2.0": s.deploys["checkout 2.0"],
    }  # fmt: skip
    (caller,) = results.panel(DETAIL, "Callers")
    assert (caller["caller"], caller["requests"], caller["error_ratio"]) == (s.front, 180, pytest.approx(30 / 180))
    (callee,) = results.panel(DETAIL, "Callees")
    assert (callee["callee"], callee["seen"], callee["requests"], callee["error_ratio"]) == (
        s.payments, "unanswered", 60, 0,
    )  # fmt: skip
    (front_callee,) = results.panel(DETAIL, "Callees", service=s.front)
    assert (front_callee["callee"], front_callee["seen"], front_callee["requests"]) == (s.checkout, "answered", 180)
    assert results.panel(DETAIL, "Callers", service=s.front) == []
    deploys = results.panel(DETAIL, "Deploys")
    assert [(d["version"], d["status"]) for d in deploys] == [("4.0", "succeeded"), ("3.0", "failed"),
                                                             ("2.0", "succeeded")]  # fmt: skip
    incidents = by(results.panel(DETAIL, "Incidents"), "incident_id")
    assert set(incidents) == {s.incidents["checkout"], s.incidents["checkout open"]}
    latest = results.panel(DETAIL, "Requests and errors per second")
    assert sum(r["errors_per_s"] for r in latest) * 60 == pytest.approx(30)


def test_the_trace_link_opens_the_failed_trace(results: Results, scenario: ds.Scenario) -> None:
    (error,) = results.panel(DETAIL, "Top errors")
    panel = next(p for p in ds.panels(DASHBOARDS[DETAIL]) if p["title"] == "Top errors")
    raw_sql = trace_link_query(panel)["rawSql"].replace("${__value.raw}", error["trace_id"])
    columns, spans = results.run(raw_sql, DETAIL)
    assert columns == ["traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration",
                       "tags", "serviceTags", "statusCode", "logs", "references", "kind", "statusMessage",
                       "traceState"]  # fmt: skip
    assert {s["traceID"] for s in spans} == {error["trace_id"]}
    assert {(s["serviceName"], s["kind"]) for s in spans} >= {
        (scenario.front, "Server"), (scenario.front, "Client"), (scenario.checkout, "Server"),
    }  # fmt: skip
    failed = [s for s in spans if s["serviceName"] == scenario.checkout and s["kind"] == "Server"]
    assert failed[0]["statusCode"] == 2
    assert failed[0]["logs"][0]["name"] == "exception"


def test_incidents_mttr_and_dora(results: Results, scenario: ds.Scenario) -> None:
    s, d = scenario, scenario.deploys
    incidents = by(results.panel(INCIDENTS, "Incidents"), "incident_id")
    assert set(incidents) == set(s.incidents.values())
    front, checkout, still_open = (incidents[s.incidents[k]] for k in ("front", "checkout", "checkout open"))
    assert (front["status"], front["time_to_resolve_s"]) == ("resolved", 600)
    assert (front["cause_deploy_id"], front["cause_deploy"], front["cause_from"]) == (
        d["front 2.0"], f"{s.front} 2.0", "named",
    )  # fmt: skip
    # The analysis found checkout 2.0, scored 0.5 or more, and the impact start at its start.
    assert (checkout["cause_deploy_id"], checkout["cause_from"]) == (d["checkout 2.0"], "analysis")
    assert checkout["time_to_resolve_s"] == 1200
    assert checkout["impact_started_at"].replace(tzinfo=UTC) == s.at(40)
    assert re.fullmatch(r"[0-9a-f]{32}", checkout["trace_id"])
    assert (still_open["status"], still_open["resolved_at"], still_open["time_to_resolve_s"]) == ("open", None, None)

    (mttr,) = results.panel(INCIDENTS, "MTTR")
    assert mttr == {"incidents": 3, "open_incidents": 1, "mttr_s": 900, "median_ttr_s": 900}
    for period in ("day", "week"):
        (trend,) = results.panel(INCIDENTS, "MTTR trend", period=period)
        assert (trend["mean_ttr_s"], trend["median_ttr_s"], trend["resolved_incidents"]) == (900, 900, 2)
    (restore,) = results.panel(INCIDENTS, "Time to restore")
    assert restore == {"median_ttr_s": 900, "resolved_incidents": 2}

    # Counted: front 2.0, checkout 2.0, 3.0 and 4.0 (the rollback to front 1.0 is not); failed: front 2.0 (rolled
    # back, and named as a cause), checkout 2.0 (the analysis' cause), checkout 3.0 (failed).
    (frequency,) = results.panel(INCIDENTS, "Deployment frequency")
    assert frequency == {"deploys": 4, "deploys_per_day": pytest.approx(4 / (2 / 24))}
    (failure,) = results.panel(INCIDENTS, "Change failure rate")
    assert failure == {"deploys": 4, "failed_deploys": 3, "change_failure_rate": 0.75}
    (lead,) = results.panel(INCIDENTS, "Lead time for changes")
    assert lead == {"lead_time_s": 1500, "deploys_with_commit_time": 1}
    listed = by(results.panel(INCIDENTS, "Deploys counted for DORA"), "deploy_id")
    assert {k: (listed[v]["counted"], listed[v]["failed"]) for k, v in d.items() if v in listed} == {
        "front 2.0": (True, True), "front 1.0 again": (False, False), "checkout 2.0": (True, True),
        "checkout 3.0": (True, True), "checkout 4.0": (True, False),
    }  # fmt: skip
    # Another environment has none of these deploys.
    (elsewhere,) = results.panel(INCIDENTS, "Change failure rate", environment=f"{s.prefix}-nowhere")
    assert elsewhere == {"deploys": 0, "failed_deploys": 0, "change_failure_rate": None}


def test_mesh(results: Results, scenario: ds.Scenario) -> None:
    s = scenario
    edges = {(e["mesh"], e["source"], e["destination"]): e for e in results.panel(MESH, "Edges")}
    istio, linkerd = edges[("istio", s.front, s.checkout)], edges[("linkerd", s.checkout, s.db)]
    assert (istio["requests"], istio["error_ratio"], istio["mtls_share"]) == (
        70, pytest.approx(5 / 70), pytest.approx(50 / 70),
    )  # fmt: skip
    assert (linkerd["requests"], linkerd["error_ratio"], linkerd["mtls_share"]) == (115, pytest.approx(3 / 115), 0)
    assert {key for key in edges if key[1].startswith(s.prefix)} == {("istio", s.front, s.checkout),
                                                                     ("linkerd", s.checkout, s.db)}  # fmt: skip
    coverage = by(results.panel(MESH, "mTLS coverage by destination"), "destination")
    assert coverage[s.checkout]["mtls_coverage"] == pytest.approx(50 / 70)
    assert coverage[s.db]["mtls_coverage"] == 0
    (overall,) = results.panel(MESH, "mTLS coverage")
    assert 0 <= overall["mtls_coverage"] <= 1
    assert overall["requests"] >= 70 + 115
    rate = results.panel(MESH, "Requests per second per edge")
    assert sum(r["requests_per_s"] for r in rate if r["edge"] == f"{s.front} -> {s.checkout}") * 60 == pytest.approx(70)
