"""Deploys over the HTTP API: recording and merging, the rollback chain, validation, and implicit deploys
found in telemetry sent through the real OpenTelemetry SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from correlator.api.server import Server
from correlator.service.deploys import CHECKPOINT_LAG
from correlator.store import records as store_records

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url(), timeout=30) as client:
        yield client


def post_deploy(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/api/v1/deploys", json=body)


def deploys_of(api: httpx.Client, service: str) -> list[dict[str, Any]]:
    """The service's deploys, oldest first."""
    response = api.get("/api/v1/deploys", params={"service": service, "since": "30d"})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["deploys"]))


def test_a_deploy_is_created_then_merged_by_id(api: httpx.Client, service_name: str) -> None:
    started = NOW - timedelta(hours=2)
    first = post_deploy(
        api, deploy_id="ci-1", service=service_name, version="1.4.0", status="started", started_at=iso(started),
        revision="abc1234", attributes={"pipeline": "17"},
    )  # fmt: skip
    assert first.status_code == 201, first.text
    assert first.json() == {"deploy_id": "ci-1", "created": True}

    finished = started + timedelta(minutes=4)
    again = post_deploy(
        api, deploy_id="ci-1", service=service_name, version="1.4.0", status="succeeded",
        finished_at=iso(finished), url="https://ci.example/run/17", attributes={"runner": "r2"},
    )  # fmt: skip
    assert again.status_code == 200, again.text
    assert again.json() == {"deploy_id": "ci-1", "created": False}

    deploy = api.get("/api/v1/deploys/ci-1").json()
    assert deploy["status"] == "succeeded"
    assert deploy["started_at"] == iso(started)  # kept: the later call sent none
    assert deploy["finished_at"] == iso(finished)
    assert deploy["revision"] == "abc1234"
    assert deploy["url"] == "https://ci.example/run/17"
    assert deploy["attributes"] == {"pipeline": "17", "runner": "r2"}
    assert deploy["environment"] == "production"
    assert deploy["source"] == "api"
    assert deploy["impact"]["verdict"] == "insufficient_data"  # no telemetry around it
    assert deploy["previous_version"] is None


def test_a_deploy_without_an_id_lands_on_one_record_when_retried(api: httpx.Client, service_name: str) -> None:
    body = {
        "service": service_name,
        "version": "2.0.0",
        "revision": "def5678",
        "started_at": iso(NOW - timedelta(hours=1)),
    }
    first = post_deploy(api, **body, status="started")
    second = post_deploy(api, **body, status="succeeded")
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["deploy_id"] == second.json()["deploy_id"]
    [deploy] = deploys_of(api, service_name)
    assert deploy["status"] == "succeeded"


def test_a_return_to_an_earlier_version_is_a_rollback_whatever_the_arrival_order(
    api: httpx.Client, service_name: str
) -> None:
    t0 = NOW - timedelta(hours=3)
    # The rollback arrives before the deploy it undoes: the chain is rebuilt from start times.
    for deploy_id, version, minutes in (("r-1", "1.0", 0), ("r-3", "1.0", 60), ("r-2", "1.1", 30), ("r-4", "1.0", 90)):
        response = post_deploy(
            api, deploy_id=deploy_id, service=service_name, version=version, environment="staging",
            started_at=iso(t0 + timedelta(minutes=minutes)),
        )  # fmt: skip
        assert response.status_code == 201, response.text
    chain = {d["deploy_id"]: d for d in deploys_of(api, service_name)}
    assert [chain[i]["previous_version"] for i in ("r-1", "r-2", "r-3", "r-4")] == [None, "1.0", "1.1", "1.0"]
    assert chain["r-3"]["is_rollback"] is True
    assert chain["r-3"]["rollback_of"] == "r-2"
    assert chain["r-2"]["status"] == "rolled_back"
    # Keeping the version (a config-only change) is a deploy, not a rollback.
    assert chain["r-4"]["is_rollback"] is False
    assert chain["r-1"]["status"] == chain["r-3"]["status"] == chain["r-4"]["status"] == "succeeded"


def test_a_failed_deploy_replaces_nothing(api: httpx.Client, service_name: str) -> None:
    t0 = NOW - timedelta(hours=3)
    steps = (("f-1", "1.0", "succeeded", 0), ("f-2", "2.0", "failed", 10), ("f-3", "1.0", "succeeded", 20))
    for deploy_id, version, status, minutes in steps:
        post_deploy(
            api, deploy_id=deploy_id, service=service_name, version=version, status=status,
            started_at=iso(t0 + timedelta(minutes=minutes)),
        )  # fmt: skip
    chain = {d["deploy_id"]: d for d in deploys_of(api, service_name)}
    assert chain["f-2"]["status"] == "failed"
    assert chain["f-3"]["is_rollback"] is False
    assert chain["f-3"]["previous_version"] == "1.0"


def test_lists_filter_by_window_environment_and_limit(api: httpx.Client, service_name: str) -> None:
    for index, env in enumerate(("prod-eu", "prod-eu", "prod-us")):
        post_deploy(
            api, service=service_name, version=f"3.{index}", environment=env,
            started_at=iso(NOW - timedelta(days=index * 10 + 1)),
        )  # fmt: skip
    listed = api.get("/api/v1/deploys", params={"service": service_name, "environment": "prod-eu"}).json()["deploys"]
    assert [d["version"] for d in listed] == ["3.0", "3.1"]  # newest first
    recent = api.get("/api/v1/deploys", params={"service": service_name, "since": "5d"}).json()["deploys"]
    assert [d["version"] for d in recent] == ["3.0"]
    one = api.get("/api/v1/deploys", params={"service": service_name, "limit": 1}).json()["deploys"]
    assert len(one) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"version": "1"}, "service", id="no-service"),
        pytest.param({"service": "s"}, "version", id="no-version"),
        pytest.param({"service": "s", "version": "1", "started_at": "yesterday"}, "started_at", id="bad-time"),
        pytest.param({"service": "s", "version": "1", "started_at": "1999-12-31T23:00:00Z"}, "before 2000", id="old"),
        pytest.param({"service": "s", "version": "1", "finished_at": "2099-01-01T00:00:00Z"}, "future", id="future"),
        pytest.param({"service": "s", "version": "1", "status": "exploded"}, "status", id="bad-status"),
        pytest.param({"service": "s", "version": "1", "colour": "red"}, "colour", id="unknown-field"),
    ],
)
def test_bad_deploys_are_refused_with_the_reason(api: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = post_deploy(api, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "bad_request"
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"since": "1h", "until": "2h"}, "after until", id="reversed"),
        pytest.param({"since": "100d"}, "longest", id="too-long"),
        pytest.param({"since": "soon"}, "since", id="garbage"),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 1001}, "limit", id="limit-high"),
    ],
)
def test_bad_list_parameters_are_refused(api: httpx.Client, params: dict[str, Any], message: str) -> None:
    response = api.get("/api/v1/deploys", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_an_unknown_deploy_is_404(api: httpx.Client) -> None:
    response = api.get("/api/v1/deploys/no-such-deploy")
    assert response.status_code == 404
    assert "no-such-deploy" in response.json()["error"]["message"]


def send_spans(server: Server, service: str, attributes: dict[str, str], times: list[datetime]) -> None:
    """One server span at each time, from a service whose resource carries `attributes`, via the real SDK."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, **attributes}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.url() + "/v1/traces")))
    tracer = provider.get_tracer("test")
    for moment in times:
        start = int(moment.timestamp() * 1e9)
        tracer.start_span("GET /", kind=SpanKind.SERVER, start_time=start).end(end_time=start + 5_000_000)
    provider.shutdown()


def every(start: datetime, minutes: int, count: int) -> list[datetime]:
    return [start + timedelta(minutes=minutes * i) for i in range(count)]


def test_versions_seen_in_telemetry_become_deploys_with_a_detected_rollback(
    server: Server, api: httpx.Client, service_name: str
) -> None:
    t0 = NOW - timedelta(hours=4)
    env = {"deployment.environment.name": "production"}
    send_spans(server, service_name, {**env, "service.version": "1.0"}, every(t0, 1, 30))
    # A rolling update: the old version still answers for two minutes after the new one started.
    send_spans(server, service_name, {**env, "service.version": "1.1"}, every(t0 + timedelta(minutes=30), 1, 30))
    send_spans(server, service_name, {**env, "service.version": "1.0"}, every(t0 + timedelta(minutes=30.5), 1, 2))
    send_spans(server, service_name, {**env, "service.version": "1.0"}, every(t0 + timedelta(minutes=60), 1, 30))

    deploys = deploys_of(api, service_name)
    assert [(d["version"], d["previous_version"], d["is_rollback"]) for d in deploys] == [
        ("1.0", None, False),
        ("1.1", "1.0", False),
        ("1.0", "1.1", True),
    ]
    assert all(d["source"] == "telemetry" for d in deploys)
    assert deploys[0]["started_at"] == iso(t0)
    assert deploys[1]["started_at"] == iso(t0 + timedelta(minutes=30))
    assert deploys[2]["started_at"] == iso(t0 + timedelta(minutes=60))
    assert deploys[2]["rollback_of"] == deploys[1]["deploy_id"]
    assert deploys[1]["status"] == "rolled_back"


def test_an_explicit_deploy_covers_its_telemetry(server: Server, api: httpx.Client, service_name: str) -> None:
    t0 = NOW - timedelta(hours=2)
    # Linked by deployment.id: the strongest link.
    post_deploy(api, deploy_id="argo-77", service=service_name, version="5.0", started_at=iso(t0))
    send_spans(
        server,
        service_name,
        {"service.version": "5.0", "deployment.id": "argo-77"},
        every(t0 + timedelta(minutes=1), 5, 3),
    )
    # Linked by version, near in time; the event arrives after the telemetry and takes over the record.
    send_spans(server, service_name, {"service.version": "5.1"}, every(t0 + timedelta(minutes=30), 5, 3))
    before = deploys_of(api, service_name)
    assert [(d["version"], d["source"]) for d in before] == [("5.0", "api"), ("5.1", "telemetry")]
    post_deploy(
        api, deploy_id="ci-5.1", service=service_name, version="5.1", started_at=iso(t0 + timedelta(minutes=28))
    )
    after = deploys_of(api, service_name)
    assert [(d["deploy_id"], d["previous_version"]) for d in after] == [("argo-77", None), ("ci-5.1", "5.0")]


def test_reads_reconcile_only_after_the_store_took_a_write(
    server: Server, api: httpx.Client, service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.state is not None
    deploys, store = server.state.deploys, server.state.store
    looked: list[datetime] = []
    this_thread = threading.current_thread()
    real = store_records.services_with_new_versions

    def counted(*args: Any) -> list[tuple[str, str, datetime]]:
        if threading.current_thread() is this_thread:  # not the background reconciler's calls
            looked.append(args[1])
        return real(*args)

    monkeypatch.setattr(store_records, "services_with_new_versions", counted)
    # A reconcile that found pairs wrote their runs: the next one looks again, until a pass writes nothing
    # (telemetry inserted within RECONCILE_OVERLAP of the last pass is looked at again).
    deadline = time.monotonic() + 30
    writes = store.writes
    deploys.reconcile()
    while store.writes != writes and time.monotonic() < deadline:
        time.sleep(0.5)
        writes = store.writes
        deploys.reconcile()
    assert store.writes == writes, "reconciling kept writing"
    settled = len(looked)
    for _ in range(3):
        deploys.reconcile()
    assert len(looked) == settled, "reconciled again without a write in between"

    send_spans(server, service_name, {"service.version": "7.0"}, [NOW - timedelta(minutes=5)])
    assert store.writes is not None
    assert writes is not None
    assert store.writes > writes
    deploys.reconcile()
    assert len(looked) == settled + 1, "a write in between, yet no reconcile"
    [deploy] = deploys_of(api, service_name)
    assert (deploy["version"], deploy["source"]) == ("7.0", "telemetry")


def test_passes_resume_from_their_checkpoint_and_still_find_the_rollback(
    server: Server, api: httpx.Client, service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read below reconciles what arrived since the last pass; after the first, a pass reads only the
    minutes from its checkpoint on (CHECKPOINT_LAG behind the latest), unless history older than that arrives."""
    reads_from: list[datetime] = []
    real = store_records.version_minutes

    def spied(store: Any, first_seen_from: dict[tuple[str, str], datetime]) -> Any:
        if (service_name, "production") in first_seen_from:
            reads_from.append(first_seen_from[(service_name, "production")])
        return real(store, first_seen_from)

    monkeypatch.setattr(store_records, "version_minutes", spied)
    t0 = NOW - timedelta(hours=5)
    send_spans(server, service_name, {"service.version": "1.0"}, every(t0, 1, 30))
    assert [d["version"] for d in deploys_of(api, service_name)] == ["1.0"]
    send_spans(server, service_name, {"service.version": "1.1"}, every(t0 + timedelta(minutes=30), 1, 30))
    assert [d["version"] for d in deploys_of(api, service_name)] == ["1.0", "1.1"]
    send_spans(server, service_name, {"service.version": "1.0"}, every(t0 + timedelta(minutes=60), 1, 30))
    deploys = deploys_of(api, service_name)
    assert [(d["version"], d["is_rollback"]) for d in deploys] == [("1.0", False), ("1.1", False), ("1.0", True)]
    assert deploys[1]["status"] == "rolled_back"
    # Distinct starts, in order (a pass within RECONCILE_OVERLAP of an insert looks at the pair again): every
    # minute, then from an hour before the latest minute of the first stage, then of the second.
    assert list(dict.fromkeys(reads_from)) == [
        store_records.EPOCH,
        t0 + timedelta(minutes=29) - CHECKPOINT_LAG,
        t0 + timedelta(minutes=59) - CHECKPOINT_LAG,
    ]

    # History from before the checkpoint: that pass reads every minute again, and the chain gains its start.
    reads_from.clear()
    send_spans(server, service_name, {"service.version": "0.9"}, every(t0 - timedelta(minutes=30), 1, 10))
    deploys = deploys_of(api, service_name)
    assert [(d["version"], d["is_rollback"]) for d in deploys] == [
        ("0.9", False),
        ("1.0", False),
        ("1.1", False),
        ("1.0", True),
    ]
    assert store_records.EPOCH in reads_from
