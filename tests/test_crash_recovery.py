"""SIGKILL at random moments during ingest: nothing acknowledged is lost, retries are counted as duplicates.

`correlator serve` runs as a child process on one data directory. Sender threads post OTLP/HTTP protobuf
requests whose spans carry unique ids, and GitHub deployment_status and Alertmanager firing/resolved webhooks,
recording which got a 2xx. At seeded random moments the server is killed with SIGKILL and started again on the
same directory; what was not acknowledged is sent again after the restart, as an exporter or a platform's
redelivery would. After the last round everything has been acknowledged once; a graceful stop, then a separate
process counts the stored rows per span id (chDB lets one process open a directory, and this one may hold the
session's store already). Every acknowledged request must be stored, whole; a request stored more than once is
a duplicate, caused by a retry of a request whose first attempt was stored but not acknowledged: counted and
printed, not an error (OTLP delivery is at least once). Webhook records are ids, so they cannot duplicate: each
acknowledged deploy and incident must be there, with the state its last acknowledged delivery gave it.

`crash_run` is also what `python -m bench.reliability` runs for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import span, traces_request
from tests.processes import ServeProcess, spawn_serve

SEED = int(os.environ.get("CORRELATOR_CRASH_SEED", "20261126"))
KILLS = 10
SPANS_PER_REQUEST = 100
OTLP_SENDERS = 3
PROTOBUF = {"Content-Type": "application/x-protobuf"}
FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
WINDOW = {"since": "2026-04-01T00:00:00Z", "until": "2026-06-01T00:00:00Z", "limit": "1000"}


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@dataclass
class Delivery:
    """One request a client must get acknowledged: an OTLP body or a webhook."""

    key: str
    path: str
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    acknowledged: bool = False
    answer: dict[str, Any] = field(default_factory=dict)


def _traces(index: int, service: str) -> Delivery:
    """Request `index`: one trace of SPANS_PER_REQUEST spans, span ids index * 1000 + 1 .. (unique per run)."""
    trace_id = (10**12 + index).to_bytes(16, "big")
    spans = [
        span(
            name=f"op-{i % 5}",
            trace_id=trace_id,
            span_id=(index * 1000 + i + 1).to_bytes(8, "big"),
            start=1_767_225_600_000_000_000 + index * 1_000_000_000 + i * 1000,
        )
        for i in range(SPANS_PER_REQUEST)
    ]
    body = traces_request(service, spans).SerializeToString()
    return Delivery(f"traces-{index}", "/v1/traces", body, PROTOBUF)


def _github(index: int, number: int, service: str) -> Delivery:
    """A GitHub deployment_status `success` of deployment `number` (delivery id kept across redeliveries)."""
    payload = _fixture("github_deployment_status")
    payload["deployment"]["id"] = number
    payload["deployment"]["payload"] = {"service": service, "version": f"1.{index}.0"}
    minute = index % 600
    payload["deployment"]["created_at"] = f"2026-04-28T{10 + minute // 60:02d}:{minute % 60:02d}:00Z"
    payload["deployment_status"]["updated_at"] = f"2026-04-28T{10 + minute // 60:02d}:{minute % 60:02d}:30Z"
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "deployment_status",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    return Delivery(f"github-{number}", "/api/v1/webhooks/github", json.dumps(payload).encode(), headers)


def _alert(index: int, service: str, status: str) -> Delivery:
    """An Alertmanager notification of alert `index`, firing or resolved (then ending 5 minutes after it began)."""
    payload = _fixture("alertmanager_v4")
    minute = index % 600
    starts = f"2026-04-29T{minute // 60:02d}:{minute % 60:02d}:00Z"
    ends = f"2026-04-29T{(minute + 5) // 60:02d}:{(minute + 5) % 60:02d}:00Z"
    alert = payload["alerts"][0]
    alert.update(
        status=status,
        labels={"alertname": f"Crash{index}", "service": service, "severity": "critical"},
        startsAt=starts,
        endsAt=ends if status == "resolved" else "0001-01-01T00:00:00Z",
        fingerprint=f"{uuid.uuid5(uuid.NAMESPACE_OID, f'{service}-{index}').hex[:16]}",
    )
    payload.update(status=status, alerts=[alert], commonLabels={"alertname": f"Crash{index}"})
    headers = {"Content-Type": "application/json"}
    return Delivery(f"alert-{index}-{status}", "/api/v1/webhooks/alertmanager", json.dumps(payload).encode(), headers)


class Traffic:
    """The client side: deliveries to send, those sent but unacknowledged (resent first), and the outcomes."""

    def __init__(self, service: str, deploy_base: int) -> None:
        self.service = service
        self._deploy_base = deploy_base
        self._lock = threading.Lock()
        self._next_traces = 0
        self._next_webhook = 0
        self.retry: dict[str, list[Delivery]] = {"otlp": [], "webhooks": []}
        self.sent: list[Delivery] = []
        self.pending_resolutions: list[int] = []

    def next(self, kind: str) -> Delivery:
        with self._lock:
            if self.retry[kind]:
                return self.retry[kind].pop(0)
            if kind == "otlp":
                delivery = _traces(self._next_traces, self.service)
                self._next_traces += 1
            elif self.pending_resolutions:
                delivery = _alert(self.pending_resolutions.pop(0), self.service, "resolved")
            else:
                index = self._next_webhook
                self._next_webhook += 1
                if index % 2:
                    delivery = _alert(index, self.service, "firing")
                else:
                    delivery = _github(index, self._deploy_base + index, self.service)
            self.sent.append(delivery)
            return delivery

    def outcome(self, kind: str, delivery: Delivery, response: httpx.Response | None) -> None:
        with self._lock:
            if response is not None and response.status_code in (200, 201):
                delivery.acknowledged = True
                if delivery.path.startswith("/api"):
                    delivery.answer = response.json()
                    if delivery.key.endswith("-firing"):
                        self.pending_resolutions.append(int(delivery.key.split("-")[1]))
                return
            if response is not None and response.status_code not in (429, 503):
                raise AssertionError(f"{delivery.key}: {response.status_code} {response.text[:300]}")
            self.retry[kind].append(delivery)

    def acknowledged_count(self) -> int:
        with self._lock:
            return sum(1 for d in self.sent if d.acknowledged)

    def unacknowledged(self) -> list[Delivery]:
        """Everything sent and not acknowledged, resolutions of acknowledged firing alerts included."""
        with self._lock:
            while self.pending_resolutions:
                self.sent.append(_alert(self.pending_resolutions.pop(0), self.service, "resolved"))
            return [d for d in self.sent if not d.acknowledged]


def _send(url: str, traffic: Traffic, kind: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            delivery = traffic.next(kind)
            delivery.attempts += 1
            try:
                response: httpx.Response | None = client.post(
                    delivery.path, content=delivery.body, headers=delivery.headers
                )
            except httpx.HTTPError:
                response = None
            traffic.outcome(kind, delivery, response)
            if response is None:
                stop.wait(0.05)  # the server is gone: the round ends


def _resend_all(url: str, traffic: Traffic) -> None:
    """After the last restart: send everything unacknowledged until it is acknowledged."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(20):
            missing = traffic.unacknowledged()
            if not missing:
                return
            for delivery in missing:
                delivery.attempts += 1
                response = client.post(delivery.path, content=delivery.body, headers=delivery.headers)
                kind = "otlp" if delivery.path.startswith("/v1") else "webhooks"
                traffic.outcome(kind, delivery, response)
    raise AssertionError(f"still unacknowledged: {[d.key for d in traffic.unacknowledged()]}")


_COUNT_SCRIPT = """
import json, sys
from correlator.store import Store, StoreConfig
store = Store(StoreConfig(sys.argv[1]))
spans = store.rows(
    "SELECT intDiv(reinterpretAsUInt64(reverse(unhex(SpanId))), 1000) AS request, count() AS n, uniqExact(SpanId)"
    " FROM otel.otel_traces WHERE ServiceName = {service:String} GROUP BY request",
    {"service": sys.argv[2]},
)
lookup = store.rows(
    "SELECT TraceId, count() FROM otel.otel_traces_trace_id_ts WHERE TraceId IN"
    " (SELECT DISTINCT TraceId FROM otel.otel_traces WHERE ServiceName = {service:String}) GROUP BY TraceId",
    {"service": sys.argv[2]},
)
print(json.dumps({"spans": [list(r) for r in spans], "lookup": [list(r) for r in lookup]}))
store.close()
"""


def _count_stored(data_dir: Path, service: str) -> dict[str, Any]:
    """Rows per request of a stopped server's store, counted by a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_SCRIPT, f"chdb://{data_dir}", service],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass
class CrashReport:
    """What a crash run did and found."""

    seed: int
    kills: int
    seconds: float
    otlp_requests: int
    otlp_attempts: int
    acknowledged_in_rounds: int
    spans_acknowledged: int
    spans_stored: int
    duplicate_requests: int
    duplicate_spans: int
    lost_requests: list[int]
    partial_requests: list[int]
    missing_lookup: int
    webhooks: int
    webhook_attempts: int
    webhooks_acknowledged_in_rounds: int
    lost_webhooks: list[str]
    duplicate_records: int
    kill_delays_s: list[float]

    def summary(self) -> str:
        return (
            f"crash run (seed {self.seed}): {self.kills} SIGKILLs in {self.seconds:.0f} s; OTLP: "
            f"{self.otlp_requests} requests ({self.otlp_attempts} attempts, {self.acknowledged_in_rounds} "
            f"acknowledged before a kill), {self.spans_acknowledged} spans acknowledged, {self.spans_stored} "
            f"stored, {self.duplicate_requests} requests ({self.duplicate_spans} spans) stored twice by a retry, "
            f"{len(self.lost_requests)} acknowledged requests lost, {len(self.partial_requests)} stored in part, "
            f"{self.missing_lookup} traces missing from the id lookup; webhooks: {self.webhooks} deliveries "
            f"({self.webhook_attempts} attempts, {self.webhooks_acknowledged_in_rounds} acknowledged before a "
            f"kill), {len(self.lost_webhooks)} acknowledged lost, {self.duplicate_records} duplicate records"
        )


def _check_webhooks(child: ServeProcess, traffic: Traffic) -> tuple[list[str], int]:
    """Acknowledged webhooks whose record is missing or in the wrong state, and records listed twice."""
    lost: list[str] = []
    params = {"service": traffic.service, **WINDOW}
    deploys = httpx.get(child.url + "/api/v1/deploys", params=params, timeout=60).json()["deploys"]
    incidents = httpx.get(child.url + "/api/v1/incidents", params=params, timeout=60).json()["incidents"]
    deploy_ids = Counter(d["deploy_id"] for d in deploys)
    incident_by_id = {i["incident_id"]: i for i in incidents}
    incident_ids = Counter(i["incident_id"] for i in incidents)
    duplicates = sum(n - 1 for n in deploy_ids.values()) + sum(n - 1 for n in incident_ids.values())
    by_id = {d["deploy_id"]: d for d in deploys}
    for delivery in traffic.sent:
        if not delivery.acknowledged or not delivery.path.startswith("/api"):
            continue
        if delivery.key.startswith("github-"):
            # A resend of a delivery stored just before a kill is answered as a duplicate, without ids; the
            # delivery's key is its deploy id (github-<deployment id>).
            deploy_id = delivery.key if delivery.answer.get("duplicate") else delivery.answer["deploy_ids"][0]
            if deploy_id not in by_id or by_id[deploy_id]["status"] != "succeeded":
                lost.append(delivery.key)
        else:
            [incident_id] = delivery.answer["incident_ids"]
            incident = incident_by_id.get(incident_id)
            if incident is None or (delivery.key.endswith("-resolved") and incident["status"] != "resolved"):
                lost.append(delivery.key)
    return lost, duplicates


def crash_run(
    workdir: Path, *, seed: int = SEED, kills: int = KILLS, log: Callable[[str], None] = print
) -> CrashReport:
    """Kill `correlator serve` with SIGKILL `kills` times during ingest; then count what was stored."""
    rng = random.Random(seed)
    data_dir = workdir / "data"
    traffic = Traffic(f"crash-{uuid.uuid4().hex[:8]}", deploy_base=rng.randrange(10**9, 2 * 10**9))
    started = time.monotonic()
    delays: list[float] = []
    acknowledged_in_rounds = webhooks_in_rounds = 0
    for round_index in range(kills):
        # Odd rounds map every batch in Python; even rounds let the engine parse every batch, however small.
        env = {"CORRELATOR_ENGINE_PARSING_MIN_RECORDS": "0" if round_index % 2 == 0 else "8192"}
        child = spawn_serve(data_dir, env=env)
        acknowledged_before = traffic.acknowledged_count()
        stop = threading.Event()
        senders = [
            threading.Thread(target=_send, args=(child.url, traffic, "otlp", stop), daemon=True)
            for _ in range(OTLP_SENDERS)
        ]
        senders.append(threading.Thread(target=_send, args=(child.url, traffic, "webhooks", stop), daemon=True))
        for sender in senders:
            sender.start()
        # A random moment once ingest is under way: after this round's first acknowledgement, while the
        # senders keep requests in flight (the first answers after a start take seconds on a busy machine).
        first_ack = time.monotonic() + 60
        while time.monotonic() < first_ack and traffic.acknowledged_count() == acknowledged_before:
            time.sleep(0.02)
        delay = rng.uniform(0.0, 2.5)
        delays.append(round(delay, 2))
        time.sleep(delay)
        child.stop(signal.SIGKILL)
        stop.set()
        for sender in senders:
            sender.join(60)
        acknowledged_in_rounds = sum(1 for d in traffic.sent if d.acknowledged and d.path.startswith("/v1"))
        webhooks_in_rounds = sum(1 for d in traffic.sent if d.acknowledged and d.path.startswith("/api"))
        log(
            f"kill {round_index + 1}/{kills} {delay:.2f} s after the round's first acknowledgement: "
            f"{acknowledged_in_rounds} OTLP requests and "
            f"{webhooks_in_rounds} webhooks acknowledged so far, {sum(map(len, traffic.retry.values()))} to resend"
        )

    child = spawn_serve(data_dir)
    try:
        _resend_all(child.url, traffic)
        lost_webhooks, duplicate_records = _check_webhooks(child, traffic)
    finally:
        assert child.stop() == 0, child.log()
    stored = _count_stored(data_dir, traffic.service)

    otlp = [d for d in traffic.sent if d.path.startswith("/v1")]
    rows = {int(request): (int(n), int(distinct)) for request, n, distinct in stored["spans"]}
    lost = [i for i in range(len(otlp)) if i not in rows]
    partial = [i for i, (n, distinct) in rows.items() if distinct != SPANS_PER_REQUEST or n % SPANS_PER_REQUEST]
    duplicate_requests = sum(1 for n, _ in rows.values() if n > SPANS_PER_REQUEST)
    duplicate_spans = sum(n - SPANS_PER_REQUEST for n, _ in rows.values() if n > SPANS_PER_REQUEST)
    lookup = {trace_id for trace_id, _ in stored["lookup"]}
    webhooks = [d for d in traffic.sent if d.path.startswith("/api")]
    report = CrashReport(
        seed=seed,
        kills=kills,
        seconds=time.monotonic() - started,
        otlp_requests=len(otlp),
        otlp_attempts=sum(d.attempts for d in otlp),
        acknowledged_in_rounds=acknowledged_in_rounds,
        spans_acknowledged=sum(1 for d in otlp if d.acknowledged) * SPANS_PER_REQUEST,
        spans_stored=sum(n for n, _ in rows.values()),
        duplicate_requests=duplicate_requests,
        duplicate_spans=duplicate_spans,
        lost_requests=lost,
        partial_requests=partial,
        missing_lookup=len(otlp) - len(lookup),
        webhooks=len(webhooks),
        webhook_attempts=sum(d.attempts for d in webhooks),
        webhooks_acknowledged_in_rounds=webhooks_in_rounds,
        lost_webhooks=lost_webhooks,
        duplicate_records=duplicate_records,
        kill_delays_s=delays,
    )
    log(report.summary())
    return report


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_nothing_acknowledged_is_lost_across_sigkills(tmp_path: Path) -> None:
    report = crash_run(tmp_path)
    assert report.kills >= 10
    assert report.acknowledged_in_rounds > 0, "no request was acknowledged between kills: the run proves nothing"
    assert report.webhooks_acknowledged_in_rounds > 0
    assert report.lost_requests == [], f"acknowledged requests missing from the store: {report.lost_requests}"
    assert report.partial_requests == [], f"requests stored in part: {report.partial_requests}"
    assert report.missing_lookup == 0, "stored traces missing from the trace id lookup table"
    assert report.spans_stored == report.spans_acknowledged + report.duplicate_spans
    assert report.lost_webhooks == [], f"acknowledged webhooks lost: {report.lost_webhooks}"
    assert report.duplicate_records == 0
