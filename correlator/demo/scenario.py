"""The demo's story: five services, a bad payments deploy, an alert on checkout, a rollback, the recovery.

Everything reaches the correlator the way production telemetry would: spans and logs through the OpenTelemetry
SDK's OTLP exporters (backdated: the correlator accepts history), mesh counters as OTLP protobuf (the SDK stamps
metric times itself), deploys through the API and the alert as an Alertmanager webhook. Deterministic per seed:
latencies, failures and trace ids come from one seeded generator; times are relative to the start minute.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

MINUTES = 100
TICK_S = 5
BAD_FROM, ROLLBACK_AT, ALERT_AT, RESOLVED_AT = 60, 80, 64, 84
BAD_VERSION, GOOD_VERSION = "2.3.0", "2.2.1"
PAYMENTS_BUG = ("TypeError", "unsupported operand type(s) for +: 'NoneType' and 'Decimal' (order 7731)")
# service: (version before, version after, minute of the deploy or None)
VERSIONS = {
    "web": ("4.0.0", "4.1.0", 10),
    "checkout": ("3.2.0", "3.2.0", None),
    "inventory": ("1.7.0", "1.8.0", 25),
    "search": ("5.0.0", "5.0.0", None),
}
# Istio edges the mesh reports (source, destination, mTLS policy): search was left out of STRICT mode.
MESH_EDGES = (
    ("web", "checkout", "mutual_tls"),
    ("checkout", "payments", "mutual_tls"),
    ("checkout", "inventory", "mutual_tls"),
    ("web", "search", "none"),
)


class SeededIds(IdGenerator):
    """Trace and span ids from the scenario's generator, so a seed replays the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Story:
    """What the demo did, for its report: the start, the alert's incident, and the bad deploy."""

    start: datetime
    incident_id: str
    bad_deploy_id: str
    rollback_deploy_id: str


class Shop:
    """The simulated system, talking to one correlator."""

    def __init__(self, url: str, token: str | None, seed: int, now: datetime) -> None:
        self.url = url.rstrip("/")
        self.rng = random.Random(seed)
        self.ids = SeededIds(self.rng)
        self.start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 10)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self._headers = headers
        self._tracers: dict[tuple[str, str], tuple[TracerProvider, trace.Tracer]] = {}
        self._logs: dict[str, LoggerProvider] = {}
        self.mesh: dict[tuple[str, str, str], int] = {}
        self.mesh_errors: dict[tuple[str, str], int] = {}

    def at(self, minute: float) -> datetime:
        return self.start + timedelta(minutes=minute)

    def version(self, service: str, minute: float) -> str:
        if service == "payments":
            return BAD_VERSION if BAD_FROM <= minute < ROLLBACK_AT else GOOD_VERSION
        before, after, deployed = VERSIONS[service]
        return after if deployed is not None and minute >= deployed else before

    def tracer(self, service: str, minute: float) -> trace.Tracer:
        version = self.version(service, minute)
        key = (service, version)
        if key not in self._tracers:
            resource = Resource.create(
                {"service.name": service, "service.namespace": "shop", "service.version": version,
                 "deployment.environment.name": "production"}
            )  # fmt: skip
            provider = TracerProvider(resource=resource, id_generator=self.ids)
            exporter = OTLPSpanExporter(endpoint=self.url + "/v1/traces", headers=self._headers)
            provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=50_000, max_export_batch_size=2048))
            self._tracers[key] = (provider, provider.get_tracer("shop"))
        return self._tracers[key][1]

    def log(self, service: str, at: datetime, span: Span, body: str) -> None:
        if service not in self._logs:
            provider = LoggerProvider(resource=Resource.create({"service.name": service, "service.namespace": "shop"}))
            exporter = OTLPLogExporter(endpoint=self.url + "/v1/logs", headers=self._headers)
            provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            self._logs[service] = provider
        self._logs[service].get_logger("shop").emit(
            timestamp=_ns(at), context=trace.set_span_in_context(span), body=body,
            severity_number=SeverityNumber.ERROR, severity_text="ERROR",
        )  # fmt: skip

    def _serve(
        self, service: str, minute: float, at: datetime, name: str, ms: float, parent: Any,
        failure: tuple[str, str] | None, calls: Callable[[Any, datetime], tuple[str, str] | None] | None = None,
    ) -> tuple[str, str] | None:  # fmt: skip
        """A server span of `service`; `calls` makes its downstream calls and may return a failure to adopt."""
        span = self.tracer(service, minute).start_span(name, kind=SpanKind.SERVER, start_time=_ns(at), context=parent)
        if calls is not None:
            failure = calls(trace.set_span_in_context(span), at) or failure
        if failure is not None:
            span.add_event(
                "exception", {"exception.type": failure[0], "exception.message": failure[1]}, timestamp=_ns(at)
            )
            span.set_status(Status(StatusCode.ERROR, failure[1]))
            span.set_attribute("http.response.status_code", 500)
            self.log(service, at, span, f"{name} failed: {failure[0]}: {failure[1]}")
        else:
            span.set_attribute("http.response.status_code", 200)
        span.end(end_time=_ns(at) + int(ms * 1e6))
        return failure

    def _call(
        self, caller: str, callee: str, minute: float, at: datetime, name: str, parent: Any,
        failure: tuple[str, str] | None, ms: float,
        calls: Callable[[Any, datetime], tuple[str, str] | None] | None = None,
    ) -> tuple[str, str] | None:  # fmt: skip
        client = self.tracer(caller, minute).start_span(name, kind=SpanKind.CLIENT, start_time=_ns(at), context=parent)
        outcome = self._serve(callee, minute, at, name, ms * 0.9, trace.set_span_in_context(client), failure, calls)
        if outcome is not None:
            client.set_status(Status(StatusCode.ERROR, f"{callee} answered 500"))
        client.end(end_time=_ns(at) + int(ms * 1e6))
        policy = dict(((s, d), p) for s, d, p in MESH_EDGES).get((caller, callee))
        if policy is not None:
            code = "500" if outcome else "200"
            key = (caller, callee, code)
            self.mesh[key] = self.mesh.get(key, 0) + 1
        return outcome

    def tick(self, minute: float) -> None:
        """One moment of traffic: a page view; most check out (inventory, payments), some search."""
        at = self.at(minute)
        rng = self.rng
        bad = BAD_FROM <= minute < ROLLBACK_AT
        payment_failure = PAYMENTS_BUG if bad and rng.random() < 0.35 else None
        stock_failure = ("TimeoutError", "stock lookup timed out after 200 ms") if rng.random() < 0.004 else None

        def checkout_calls(context: Any, when: datetime) -> tuple[str, str] | None:
            self._call(
                "checkout", "inventory", minute, when, "GET /stock", context, stock_failure, 8 + rng.random() * 6
            )
            paid = self._call("checkout", "payments", minute, when, "POST /charge", context, payment_failure,
                              40 + rng.random() * 30 + (60 if bad else 0))  # fmt: skip
            return ("PaymentError", "payment service answered 500") if paid else None

        def web_calls(context: Any, when: datetime) -> tuple[str, str] | None:
            failed = self._call("web", "checkout", minute, when, "POST /checkout", context, None,
                                90 + rng.random() * 40, checkout_calls)  # fmt: skip
            if rng.random() < 0.5:
                self._call("web", "search", minute, when, "GET /search", context, None, 20 + rng.random() * 15)
            return ("UpstreamError", "checkout failed") if failed else None

        self._serve("web", minute, at, "GET /cart", 150 + rng.random() * 50, None, None, web_calls)

    def mesh_metrics(self, minute: int) -> None:
        """The mesh's cumulative istio_requests_total for every edge, as of this minute (destination reporter)."""
        request = ExportMetricsServiceRequest()
        for source, destination, policy in MESH_EDGES:
            resource = request.resource_metrics.add()
            resource.resource.attributes.extend(
                _attributes({"service.name": destination, "instance": f"{destination}-0"})
            )
            metric = resource.scope_metrics.add().metrics.add()
            metric.name = "istio_requests_total"
            metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            metric.sum.is_monotonic = True
            for code in ("200", "500"):
                point = metric.sum.data_points.add()
                point.start_time_unix_nano = _ns(self.start)
                point.time_unix_nano = _ns(self.at(minute))
                point.as_double = float(self.mesh.get((source, destination, code), 0))
                point.attributes.extend(
                    _attributes({
                        "reporter": "destination", "source_workload": source, "destination_workload": destination,
                        "response_code": code, "connection_security_policy": policy,
                    })
                )  # fmt: skip
        self._post("/v1/metrics", request.SerializeToString(), "application/x-protobuf")

    def deploy(self, service: str, version: str, minute: float, **extra: Any) -> str:
        at = self.at(minute)
        revision = f"{self.rng.getrandbits(160):040x}"
        body = {
            "service": service, "version": version, "environment": "production", "revision": revision,
            "commit_time": iso(at - timedelta(hours=3)), "started_at": iso(at),
            "finished_at": iso(at + timedelta(minutes=2)), "status": "succeeded", **extra,
        }  # fmt: skip
        answer = self._post("/api/v1/deploys", body)
        return str(answer["deploy_id"])

    def alert(self, status: str) -> str:
        alert = {
            "status": status,
            "labels": {"alertname": "CheckoutErrorRate", "service": "checkout", "severity": "critical"},
            "annotations": {"summary": "checkout 5xx above 5% for 4 minutes"},
            "startsAt": iso(self.at(ALERT_AT)),
            "endsAt": iso(self.at(RESOLVED_AT)) if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.shop.local/graph",
            "fingerprint": "c0ffee0ddba11",
        }
        payload = {
            "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrorRate\"}", "truncatedAlerts": 0,
            "status": status, "receiver": "correlator", "groupLabels": {"alertname": "CheckoutErrorRate"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.shop.local", "alerts": [alert],
        }  # fmt: skip
        answer = self._post("/api/v1/webhooks/alertmanager", payload)
        return str(answer["incident_ids"][0])

    def flush(self) -> None:
        for provider, _ in self._tracers.values():
            provider.shutdown()
        for logs in self._logs.values():
            logs.shutdown()

    def _post(self, path: str, body: Any, content_type: str = "application/json") -> Any:
        if content_type == "application/json":
            response = self.http.post(path, json=body)
        else:
            response = self.http.post(path, content=body, headers={"Content-Type": content_type})
        if response.status_code >= 400:
            raise RuntimeError(f"the correlator refused {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else None


def _attributes(values: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]


def play(shop: Shop) -> Iterator[tuple[str, int, Story | None]]:
    """Run the story; yields (what is happening, minutes done, the story once told) for a progress bar."""
    for service, (before, _, _) in VERSIONS.items():
        shop.deploy(service, before, -5)
    shop.deploy("payments", GOOD_VERSION, -5)
    bad_deploy = rollback = ""
    ticks_per_minute = 60 // TICK_S
    for minute in range(MINUTES):
        for service, (_, after, deployed) in VERSIONS.items():
            if deployed == minute:
                shop.deploy(service, after, minute)
        if minute == BAD_FROM:
            bad_deploy = shop.deploy("payments", BAD_VERSION, minute)
        if minute == ROLLBACK_AT:
            rollback = shop.deploy("payments", GOOD_VERSION, minute)
        for tick in range(ticks_per_minute):
            shop.tick(minute + tick / ticks_per_minute)
        shop.mesh_metrics(minute + 1)
        phase = "payments 2.3.0 is failing" if BAD_FROM <= minute < ROLLBACK_AT else "traffic"
        yield f"minute {minute + 1}/{MINUTES}: {phase}", minute + 1, None
    shop.flush()
    incident_id = shop.alert("firing")
    shop.alert("resolved")
    yield "alert fired and resolved", MINUTES, Story(shop.start, incident_id, bad_deploy, rollback)
