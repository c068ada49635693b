"""The dashboards as Grafana and the ClickHouse plugin would run them: their JSON, and a macro expander.

Grafana runs a panel's SQL in two steps, and `expand` does both for a fixed range:
1. The plugin's frontend (CHDatasource.applyTemplateVariables): `$__conditionalAll(phrase, $var)` becomes `1=1`
   when the variable is All (`$__all`) or empty, else the phrase; then template variables are replaced:
   `${var:sqlstring}` quotes each value and doubles its quotes (Grafana's sqlstring format, values joined by
   commas), `${var}` and `$var` give the value as is (many values as `'a','b'`, the plugin's own format).
2. The plugin's backend (pkg/macros/macros.go): `$__timeFilter(c)` -> `c >= toDateTime(<from s>) AND
   c <= toDateTime(<to s>)`; `$__timeFilter_ms(c)` the same with `fromUnixTimestamp64Milli(<ms>)`;
   `$__fromTime` / `$__toTime` -> `toDateTime(<s>)`; `$__fromTime_ms` / `$__toTime_ms` ->
   `fromUnixTimestamp64Milli(<ms>)`; `$__timeInterval(c)` -> `toStartOfInterval(toDateTime(c), INTERVAL <n>
   second)`; `$__interval_s` -> `<n>` (the panel's interval in whole seconds, at least 1);
   `$__dateFilter(c)` -> `c >= toDate('<from>') AND c <= toDate('<to>')`.
The plugin's connection reads the data source's default database; the engine of the tests reads `default`, so
`in_database` qualifies the tables after FROM and JOIN instead.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tests.factories import key_values, logs_request

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"

Variables = Mapping[str, str | Sequence[str]]


def builder() -> ModuleType:
    """dashboards/build.py, which writes the dashboard files."""
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Each dashboard by uid."""
    loaded = [json.loads(path.read_text()) for path in dashboard_files()]
    return {d["uid"]: d for d in loaded}


def datasource() -> dict[str, Any]:
    """The provisioned ClickHouse data source."""
    config = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yaml").read_text())
    (source,) = config["datasources"]
    return dict(source)


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included."""
    for item in dashboard["panels"]:
        yield item
        yield from item.get("panels", [])


@dataclass(frozen=True)
class TimeRange:
    """What Grafana sends with a query: the range and the panel's interval."""

    start: datetime
    end: datetime
    interval_s: int = 60


def _macro_args(sql: str, open_at: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro whose '(' is at open_at, and the index after its ')'."""
    depth, args, start = 0, [], open_at + 1
    for index in range(open_at, len(sql)):
        char = sql[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:index])
                return args, index + 1
        elif char == "," and depth == 1:
            args.append(sql[start:index])
            start = index + 1
    raise ValueError(f"unclosed macro arguments at {open_at}: {sql[open_at : open_at + 60]!r}")


def _values(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _is_all(value: str | Sequence[str]) -> bool:
    values = _values(value)
    return values in ([], [""], ["$__all"])


def conditional_all(sql: str, variables: Variables) -> str:
    """The frontend's $__conditionalAll: 1=1 when the variable is All or empty, else the phrase."""
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, at + len(macro) - 1)
        assert len(args) == 2, args
        name = args[1].strip().removeprefix("$").strip("{}")
        phrase = "1=1" if _is_all(variables.get(name, "")) else args[0]
        sql = sql[:at] + phrase + sql[end:]
    return sql


def _format(value: str | Sequence[str], fmt: str | None) -> str:
    values = _values(value)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt is not None:
        raise ValueError(f"expected no format or sqlstring, got {fmt!r}")
    return values[0] if isinstance(value, str) else "'" + "','".join(values) + "'"


def template_variables(sql: str, variables: Variables) -> str:
    """Grafana's variable interpolation: ${name:format}, ${name}, $name (built-in $__ names are left alone)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name.startswith("__") or name not in variables:
            assert name.startswith("__"), f"the query uses ${name}, which the test gave no value"
            return match.group(0)
        return _format(variables[name], match.group(2))

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", replace, sql)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def backend_macros(sql: str, time_range: TimeRange) -> str:
    """The backend's macros (pkg/macros/macros.go), for one range and interval."""
    start, end, interval = time_range.start, time_range.end, max(time_range.interval_s, 1)

    def with_column(name: str, render: Any) -> None:
        nonlocal sql
        pattern = f"$__{name}("
        while (at := sql.find(pattern)) != -1:
            args, after = _macro_args(sql, at + len(pattern) - 1)
            assert len(args) == 1, (name, args)
            sql = sql[:at] + render(args[0].strip()) + sql[after:]

    with_column("timeFilter_ms", lambda c: f"{c} >= {_ms(start)} AND {c} <= {_ms(end)}")
    with_column("timeFilter", lambda c: f"{c} >= {_s(start)} AND {c} <= {_s(end)}")
    with_column("dateFilter", lambda c: f"{c} >= {_day(start)} AND {c} <= {_day(end)}")
    with_column(
        "timeInterval_ms", lambda c: f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {interval * 1000} millisecond)"
    )
    with_column("timeInterval", lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {interval} second)")
    plain = {
        "fromTime_ms": _ms(start), "toTime_ms": _ms(end), "fromTime": _s(start), "toTime": _s(end),
        "interval_s": str(interval),
    }  # fmt: skip
    for name, text in plain.items():
        sql = re.sub(rf"\$__{name}\b(\(\))?", lambda _, text=text: text, sql)
    leftover = re.search(r"\$__\w+", sql)
    assert leftover is None, f"a macro the expander does not know: {leftover.group(0) if leftover else ''}"
    return sql


def _s(moment: datetime) -> str:
    return f"toDateTime({_seconds(moment)})"


def _ms(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({_millis(moment)})"


def _day(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def expand(sql: str, time_range: TimeRange, variables: Variables) -> str:
    """A panel's SQL as the plugin would send it to ClickHouse."""
    return backend_macros(template_variables(conditional_all(sql, variables), variables), time_range)


TABLE_NAME = re.compile(r"\b(FROM|JOIN)\s+(\"?)([A-Za-z_][A-Za-z0-9_]*)\2(?=[\s)]|$)")


def in_database(sql: str, database: str, tables: set[str]) -> str:
    """The tables after FROM and JOIN qualified with a database, as the plugin's connection default does."""

    def qualify(match: re.Match[str]) -> str:
        keyword, name = match.group(1), match.group(3)
        return f"{keyword} {database}.{name}" if name in tables else match.group(0)

    return TABLE_NAME.sub(qualify, sql)


# The scenario the dashboards are tested on: two services with a bad deploy, an uninstrumented callee, logs,
# deploys (a rollback, a failed one), incidents (a cause named by hand, one found by the analysis, one open), and
# Istio and Linkerd counters; everything at explicit times in a two-hour range of its own.

MS = 1_000_000
STEP = timedelta(seconds=20)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Scenario:
    """What was sent, and the ids the API gave back."""

    start: datetime
    prefix: str
    deploys: dict[str, str] = field(default_factory=dict)
    incidents: dict[str, str] = field(default_factory=dict)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=2)

    @property
    def time_range(self) -> TimeRange:
        return TimeRange(self.start, self.end, 60)

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)

    @property
    def front(self) -> str:
        return f"{self.prefix}-front"

    @property
    def checkout(self) -> str:
        return f"{self.prefix}-checkout"

    @property
    def payments(self) -> str:
        """Called by checkout, uninstrumented: known only by the caller's peer.service."""
        return f"{self.prefix}-payments"

    @property
    def db(self) -> str:
        return f"{self.prefix}-db"

    @property
    def environment(self) -> str:
        return f"{self.prefix}-env"


class Fleet:
    """One SDK tracer provider per (service, version), exporting OTLP/HTTP to the server; spans at chosen times."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.providers: dict[tuple[str, str], TracerProvider] = {}

    def span(
        self,
        service: tuple[str, str, str],
        name: str,
        kind: SpanKind,
        start: datetime,
        duration_ms: float,
        parent: Span | None = None,
        error: tuple[str, str] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """A span of (service, version, environment); `error` = (exception type, message) makes it fail."""
        service_name, version, environment = service
        provider = self.providers.get((service_name, version))
        if provider is None:
            resource = {"service.name": service_name, "deployment.environment.name": environment}
            if version:
                resource["service.version"] = version
            provider = TracerProvider(resource=Resource.create(resource))
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=self.url + "/v1/traces"), max_queue_size=100_000)
            )
            self.providers[(service_name, version)] = provider
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = provider.get_tracer("dashboards-test").start_span(name, context, kind, attributes, start_time=ns(start))
        if error is not None:
            span.add_event("exception", {"exception.type": error[0], "exception.message": error[1]}, ns(start))
            span.set_status(Status(StatusCode.ERROR, error[1]))
        span.end(end_time=ns(start) + int(duration_ms * MS))
        return span

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()


def send_traffic(scenario: Scenario, fleet: Fleet) -> list[tuple[datetime, bytes, bytes]]:
    """front -> checkout every 20 s for an hour; checkout 2.0 (from minute 40) fails every POST /checkout; every
    third checkout request calls payments. Returns (time, trace id, span id) of each failed checkout request."""
    s, failed = scenario, []
    for i in range(180):
        at = s.at(i * STEP.total_seconds() / 60)
        version = "2.0" if at >= s.at(40) else "1.0"
        checkout = (s.checkout, version, s.environment)
        front = (s.front, "", s.environment)
        endpoint = "POST /checkout" if i % 2 == 0 else "GET /cart"
        error = ("PaymentError", f"card {4000 + i} declined for order {i}") if version == "2.0" and i % 2 == 0 else None
        root = fleet.span(front, "GET /shop", SpanKind.SERVER, at, 50)
        call = fleet.span(front, endpoint, SpanKind.CLIENT, at + timedelta(milliseconds=1), 40, root, error)
        served = fleet.span(checkout, endpoint, SpanKind.SERVER, at + timedelta(milliseconds=2), 20 + i % 10, call,
                            error)  # fmt: skip
        if i % 3 == 0:
            peer = {"peer.service": s.payments}
            fleet.span(checkout, "charge", SpanKind.CLIENT, at + timedelta(milliseconds=3), 5, served, attributes=peer)
        if error is not None:
            context = served.get_span_context()
            failed.append((at, context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")))
    fleet.flush()
    return failed


def send_logs(client: httpx.Client, scenario: Scenario, failed: list[tuple[datetime, bytes, bytes]]) -> None:
    """An ERROR record per failed checkout request (with its trace), and INFO records the panels leave out."""
    records = [
        LogRecord(time_unix_nano=ns(at), severity_number=17, severity_text="ERROR", trace_id=trace_id, span_id=span_id,
                  body=AnyValue(string_value=f"payment failed at {iso(at)}"))
        for at, trace_id, span_id in failed
    ]  # fmt: skip
    records += [
        LogRecord(time_unix_nano=ns(scenario.at(minute)), severity_number=9, severity_text="INFO",
                  body=AnyValue(string_value="cart viewed"))
        for minute in range(5)
    ]  # fmt: skip
    body = logs_request(scenario.checkout, records).SerializeToString()
    response = client.post("/v1/logs", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text


def _counter(scenario: Scenario, name: str, labels: dict[str, str], points: list[tuple[int, float]],
             temporality: int = 2) -> Metric:  # fmt: skip
    """A monotonic sum with a point per (seconds after the start, value), as the prometheus receiver makes them."""
    metric = Metric(name=name)
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = temporality  # type: ignore[assignment]
    for offset, value in points:
        point = metric.sum.data_points.add()
        point.attributes.extend(key_values(labels))
        point.start_time_unix_nano = ns(scenario.start - timedelta(hours=1))
        point.time_unix_nano = ns(scenario.start + timedelta(seconds=offset))
        point.as_double = value
    return metric


def _post_metrics(client: httpx.Client, instance: str, metrics: list[Metric]) -> None:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    # The receiver puts job and instance into the resource: replicas differ only there.
    resource_metrics.resource.attributes.extend(key_values({"service.name": "kubernetes-pods",
                                                            "service.instance.id": instance}))  # fmt: skip
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    body = request.SerializeToString()
    response = client.post("/v1/metrics", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text


def send_mesh_counters(client: httpx.Client, scenario: Scenario) -> None:
    """Istio front -> checkout: 70 requests, 5 failed, 50 over mutual TLS (a reset, a plain-text series, the
    source's own report left out). Linkerd checkout -> db: 115 requests, 3 failed, none over TLS (delta points)."""
    s = scenario
    istio = {
        "reporter": "destination", "source_workload": s.front, "source_canonical_service": s.front,
        "destination_workload": s.checkout, "destination_canonical_service": s.checkout,
        "connection_security_policy": "mutual_tls", "response_code": "200",
    }  # fmt: skip
    _post_metrics(client, "10.0.0.1:15020", [
        _counter(s, "istio_requests_total", istio, [(-60, 100), (60, 110), (120, 130), (180, 5), (240, 15)]),
        _counter(s, "istio_requests_total", {**istio, "response_code": "503"}, [(-60, 3), (120, 8)]),
        _counter(s, "istio_requests_total", {**istio, "connection_security_policy": "none"}, [(0, 10), (600, 30)]),
        _counter(s, "istio_requests_total", {**istio, "reporter": "source"}, [(-60, 0), (60, 999)]),
    ])  # fmt: skip
    linkerd = {"direction": "outbound", "deployment": s.checkout, "dst_deployment": s.db, "tls": "false",
               "classification": "success", "status_code": "200"}  # fmt: skip
    _post_metrics(client, "10.0.1.1:4191", [
        _counter(s, "response_total", linkerd, [(30, 200), (90, 260), (150, 300)]),
        _counter(s, "response_total", {**linkerd, "classification": "failure"}, [(-30, 1), (90, 4)]),
        _counter(s, "response_total", {**linkerd, "direction": "inbound"}, [(30, 0), (90, 500)]),
    ])  # fmt: skip
    _post_metrics(client, "10.0.1.2:4191", [
        _counter(s, "response_total", linkerd, [(-60, 100), (60, 7), (120, 5)], temporality=1),
    ])  # fmt: skip


def post_deploy(client: httpx.Client, scenario: Scenario, service: str, version: str, minutes: float,
                **fields: Any) -> str:  # fmt: skip
    body = {"service": service, "version": version, "environment": scenario.environment,
            "started_at": iso(scenario.at(minutes)), **fields}  # fmt: skip
    response = client.post("/api/v1/deploys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["deploy_id"])


def open_incident(client: httpx.Client, service: str, opened_at: datetime, resolved_at: datetime | None) -> str:
    response = client.post("/api/v1/incidents", json={"title": f"{service} is failing", "service": service,
                                                      "severity": "critical", "opened_at": iso(opened_at)})  # fmt: skip
    assert response.status_code == 201, response.text
    incident_id = str(response.json()["incident_id"])
    if resolved_at is not None:
        resolved = client.post(f"/api/v1/incidents/{incident_id}/resolve", json={"at": iso(resolved_at)})
        assert resolved.status_code == 200, resolved.text
    return incident_id


def seed(client: httpx.Client, scenario: Scenario) -> None:
    """Send the whole scenario through the API; read the incidents back so that their analysis is stored."""
    s = scenario
    failed = send_traffic(s, Fleet(str(client.base_url)))
    send_logs(client, s, failed)
    send_mesh_counters(client, s)
    d = s.deploys
    d["front 1.0"] = post_deploy(client, s, s.front, "1.0", -10)
    d["checkout 1.0"] = post_deploy(client, s, s.checkout, "1.0", -10)
    d["front 2.0"] = post_deploy(client, s, s.front, "2.0", 15)
    d["front 1.0 again"] = post_deploy(client, s, s.front, "1.0", 35)  # a rollback of front 2.0
    d["checkout 2.0"] = post_deploy(client, s, s.checkout, "2.0", 40)
    d["checkout 3.0"] = post_deploy(client, s, s.checkout, "3.0", 75, status="failed")
    d["checkout 4.0"] = post_deploy(client, s, s.checkout, "4.0", 100, status="succeeded",
                                    commit_time=iso(s.at(80)), finished_at=iso(s.at(105)))  # fmt: skip
    i = s.incidents
    i["front"] = open_incident(client, s.front, s.at(20), s.at(30))
    named = client.post(f"/api/v1/incidents/{i['front']}/cause", json={"deploy_id": d["front 2.0"]})
    assert named.status_code in (200, 201), named.text
    i["checkout"] = open_incident(client, s.checkout, s.at(50), s.at(70))
    i["checkout open"] = open_incident(client, s.checkout, s.at(90), None)
    for incident_id in i.values():
        response = client.get(f"/api/v1/incidents/{incident_id}")
        assert response.status_code == 200, response.text
    # Reading deploys reconciles the telemetry's version runs with them (service_versions).
    listed = client.get("/api/v1/deploys", params={"service": s.checkout, "since": iso(s.at(-30)),
                                                   "until": iso(s.end)})  # fmt: skip
    assert listed.status_code == 200, listed.text
