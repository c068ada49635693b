"""Write the Grafana dashboards of this folder: `python dashboards/build.py`; `--check` only compares.

The JSON files are generated so that every panel counts requests and errors with the SQL the correlator itself
uses (dashboard_sql.py imports it) and so the queries the dashboards share are written once. Edit the Python and
regenerate; tests/test_dashboards.py fails when a JSON file is not what this script writes.
docs/dashboards.md describes the dashboards.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for path in (ROOT, ROOT.parent):  # this folder's modules, and the correlator package they read SQL from
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import dashboard_sql as q  # noqa: E402
from dashboard_model import (  # noqa: E402
    DETAIL_UID,
    Json,
    Layout,
    annotation,
    dashboard,
    environment_variable,
    logs,
    period_variable,
    series,
    service_variable,
    stat,
    table,
)

OVERVIEW_UID = "correlator-service-overview"
INCIDENTS_UID = "correlator-incidents"
MESH_UID = "correlator-mesh"
RATIO, MS = "percentunit", "ms"


def service_overview() -> Json:
    at = Layout()
    panels = [
        series(at, "Requests per second", "Server and consumer spans per second, per service.",
               q.OVERVIEW_RATE, "reqps", per="service", size=(8, 8)),
        series(at, "Error ratio", "Failed requests / requests, per service: status Error (either spelling) or "
               "HTTP 5xx.", q.OVERVIEW_ERROR_RATIO, RATIO, per="service", size=(8, 8)),
        series(at, "Latency p95", "95th percentile of request durations per service (ClickHouse quantile: exact up "
               "to 8192 requests per bucket, a reservoir sample beyond).", q.OVERVIEW_P95, MS, per="service",
               size=(8, 8)),
        table(at, "Services", "RED over the whole range; a service opens Service detail.", q.OVERVIEW_SERVICES,
              linked=("service",), size=(12, 9), requests_per_s="reqps", error_ratio=RATIO, p95_ms=MS),
        table(at, "Deploys", "Deploys started in the range (the latest state of each), newest first.",
              q.OVERVIEW_DEPLOYS, linked=("service",), size=(12, 9)),
        logs(at, "Error logs", "Log records at ERROR or above (SeverityNumber >= 17), newest first.",
             q.OVERVIEW_ERROR_LOGS),
    ]  # fmt: skip
    return dashboard(
        OVERVIEW_UID, "Correlator / Service overview", "RED per service from spans, error logs, deploys.", panels,
        variables=[service_variable(multi=True)],
        annotations=[annotation("Deploys", q.deploy_annotation(q.FRAGMENTS["SERVICES_LOWER"]))],
    )  # fmt: skip


def service_detail() -> Json:
    at = Layout()
    panels = [
        series(at, "Requests and errors per second", "The service's requests, and those that failed.",
               q.DETAIL_RATE, "reqps", size=(8, 8)),
        series(at, "Error ratio", "Failed requests / requests.", q.DETAIL_ERROR_RATIO, RATIO, size=(8, 8)),
        series(at, "Latency", "Percentiles of request durations.", q.DETAIL_LATENCY, MS, size=(8, 8)),
        table(at, "Top endpoints", "The busiest span names of the service's requests.", q.TOP_ENDPOINTS,
              error_ratio=RATIO, p95_ms=MS),
        table(at, "Top errors", "Failed requests by error type (exception type, else HTTP status) and message "
              "shape (ids and numbers replaced); the trace id is the latest such trace.", q.TOP_ERRORS,
              linked=("trace_id",)),
        series(at, "Versions over time", "Telemetry records per version (service.version, else deployment.id).",
               q.VERSIONS_OVER_TIME, "short", per="version", bars=True),
        table(at, "Version runs", "Each run of a version seen in telemetry, and the deploy it became or was covered "
              "by.", q.VERSION_RUNS),
        table(at, "Callers", "Services whose client spans are parents of this service's requests in the range.",
              q.CALLERS, linked=("caller",), error_ratio=RATIO, p95_ms=MS),
        table(at, "Callees", "Requests of other services whose parent is a client span of this one (answered), "
              "and its client spans nobody answered, named by peer.service or server.address (unanswered).",
              q.CALLEES, linked=("callee",), error_ratio=RATIO, p95_ms=MS),
        table(at, "Deploys", "Deploys of the service started in the range.", q.DETAIL_DEPLOYS, size=(24, 7)),
        table(at, "Incidents", "Incidents of the service opened in the range, and every active one; cause: named "
              "by hand, else the stored analysis' top suspect when it scores 0.5 or more.",
              q.DETAIL_INCIDENTS, linked=("service", "trace_id"), size=(24, 8),
              time_to_resolve_s="s"),
        logs(at, "Error logs", "The service's log records at ERROR or above.", q.DETAIL_ERROR_LOGS),
    ]  # fmt: skip
    return dashboard(
        DETAIL_UID, "Correlator / Service detail",
        "One service: RED, endpoints, errors, versions, dependencies, deploys and incidents.", panels,
        variables=[service_variable(multi=False)],
        annotations=[annotation("Deploys", q.deploy_annotation("service = ${service:sqlstring}"))],
    )  # fmt: skip


def incidents_and_mttr() -> Json:
    at = Layout()
    panels = [
        stat(at, "Deployment frequency", "Deploys started in the range in the environment, rollbacks not "
             "counted; per day = deploys / days in the range.", q.DEPLOY_FREQUENCY),
        stat(at, "Change failure rate", "Counted deploys that failed (status failed or rolled_back, or named as an "
             "incident's cause) / counted deploys.", q.CHANGE_FAILURE_RATE, change_failure_rate=RATIO),
        stat(at, "Lead time for changes", "Median of finished_at - commit_time over counted deploys that carry a "
             "commit time.", q.LEAD_TIME, lead_time_s="s"),
        stat(at, "Time to restore", "Median time to resolve of the environment's incidents opened in the range and "
             "resolved by its end (an incident's environment: its environment or env label, else its service's "
             "deploys').", q.TIME_TO_RESTORE, median_ttr_s="s"),
        stat(at, "MTTR", "Incidents opened in the range: mean and median time to resolve of those resolved by its "
             "end; the others are counted as open, never averaged.", q.MTTR, size=(12, 6), mttr_s="s",
             median_ttr_s="s"),
        series(at, "MTTR trend", "Mean and median time to resolve per ${period} of opening, over incidents opened "
               "in the range and resolved by its end.", q.MTTR_TREND, "s", size=(12, 6),
               overrides=[{"matcher": {"id": "byName", "options": "resolved_incidents"},
                           "properties": [{"id": "unit", "value": "short"}]}]),
        table(at, "Incidents", "Incidents opened in the range and every active one; cause: named by hand, else the "
              "stored analysis' top suspect when it scores 0.5 or more.", q.INCIDENTS,
              linked=("service", "trace_id"), size=(24, 10), time_to_resolve_s="s"),
        table(at, "Deploys counted for DORA", "Deploys started in the range in the environment; rollbacks are listed, "
              "not counted.", q.DORA_DEPLOYS, linked=("service",), size=(24, 8), lead_time_s="s"),
    ]  # fmt: skip
    return dashboard(
        INCIDENTS_UID, "Correlator / Incidents and MTTR",
        "Incidents and their causes, MTTR over time, and the four DORA keys of one environment.", panels,
        variables=[environment_variable(), service_variable(multi=True), period_variable()],
        annotations=[annotation("Deploys", q.deploy_annotation("environment = ${environment:sqlstring}"))],
        time_from="now-30d",
    )  # fmt: skip


def mesh() -> Json:
    at = Layout()
    panels = [
        stat(at, "mTLS coverage", "Share of the requests the meshes counted in the range that went over mutual TLS "
             "(Istio connection_security_policy=mutual_tls, Linkerd tls=true).", q.MTLS_COVERAGE, size=(6, 8),
             mtls_coverage=RATIO),
        table(at, "mTLS coverage by destination", "Share of each destination's mesh-counted requests that came over "
              "mutual TLS.", q.MTLS_BY_DESTINATION, linked=("destination",), size=(6, 8), mtls_coverage=RATIO),
        series(at, "Requests per second per edge", "Counter increases per edge, per second.", q.EDGE_RATE, "reqps",
               per="edge"),
        table(at, "Edges", "Each edge per mesh: requests counted in the range (Istio istio_requests_total "
              "reporter=destination, Linkerd outbound response_total; increases per series, resets included), "
              "errors (Istio 5xx, Linkerd classification=failure) and the mTLS share. Counts of two meshes are "
              "never added.", q.EDGES, linked=("source", "destination"), size=(24, 10), error_ratio=RATIO,
              mtls_share=RATIO),
        series(at, "Error ratio per edge", "Failed / counted requests per edge.", q.EDGE_ERROR_RATIO, RATIO,
               per="edge", size=(24, 8)),
    ]  # fmt: skip
    return dashboard(
        MESH_UID, "Correlator / Mesh",
        "Service mesh edges from Istio and Linkerd counters: traffic, errors and mTLS coverage.", panels,
        annotations=[annotation("Deploys", q.deploy_annotation("1=1"))],
    )  # fmt: skip


DASHBOARDS: dict[str, Callable[[], Json]] = {
    "service-overview.json": service_overview,
    "service-detail.json": service_detail,
    "incidents-and-mttr.json": incidents_and_mttr,
    "mesh.json": mesh,
}


def rendered() -> Iterator[tuple[Path, str]]:
    """Each dashboard file and the text it should hold."""
    for name, build in DASHBOARDS.items():
        yield ROOT / name, json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for path, text in rendered():
        if "--check" not in argv:
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(path.name)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python dashboards/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
