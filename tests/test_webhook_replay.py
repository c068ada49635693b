"""Property: replaying a webhook stream, or delivering it in another order, leaves the same deploys and incidents.

Hypothesis draws a stream of real-format deliveries (tests/fixtures/webhooks/ with varied ids, services,
versions and times): GitHub deployment_status (sometimes with its `deployment` event), GitLab Deployment Hooks,
Argo CD and Flux deploys; Alertmanager firing and resolved notifications for a few alerts (sometimes notified
again); PagerDuty triggered and resolved. It is delivered to one namespace of services, then delivered again
(with the same delivery ids, as a redelivery, or fresh ones, as a re-notification), and delivered in a drawn
permutation to a second namespace. The GET /api/v1/deploys and /api/v1/incidents listings must not change with
the replay, and must be the same for both orders once run-specific names and ids are normalized.

What the stream leaves out, because the contract makes it order-dependent on purpose: two different statuses
for one deploy id (a re-post merges, and the later call's non-null fields win: docs/deploys-and-incidents.md),
and alerts whose notifications disagree on labels or end time. The incident analysis fields
(`impact_started_at`, `cause_deploy_id`) are left out of the comparison: they are computed on a timer, not by
the deliveries.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.api.server import Server

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
WINDOW = {"since": "2026-04-01T00:00:00Z", "until": "2026-06-01T00:00:00Z", "limit": "1000"}
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
SERVICES = 2
# Analysis fields: computed in the background and on reads, not by deliveries.
UNCOMPARED = ("impact_started_at", "cause_deploy_id")


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return copy.deepcopy(data)


def _at(minute: int, second: int = 0) -> str:
    """A time on 2026-04-28 from 08:00, `minute` minutes on."""
    total = 8 * 60 + minute
    return f"2026-04-28T{total // 60:02d}:{total % 60:02d}:{second:02d}Z"


@dataclass(frozen=True)
class DeploySpec:
    source: str
    number: int
    service: int
    version: str
    minute: int
    failed: bool
    with_deployment_event: bool


@dataclass(frozen=True)
class AlertSpec:
    number: int
    service: int
    minute: int
    resolved_after: int | None
    renotified: bool


@dataclass(frozen=True)
class PagerDutySpec:
    number: int
    service: int
    minute: int
    resolved_after: int | None
    priority: str | None


@dataclass(frozen=True)
class Webhook:
    """One delivery, with RUN in every run-specific place (services, ids, fingerprints)."""

    source: str
    body: str
    headers: tuple[tuple[str, str], ...]


RUN = "RUNTAG00"


def _service(index: int) -> str:
    return f"replay-{RUN}-{index}"


def _number(number: int) -> str:
    # Numeric ids stay numbers: 9 digits, the run's digit first (replaced per run like RUN).
    return f"RUNDIGIT{number:08d}"


def _deploy_webhooks(spec: DeploySpec) -> list[Webhook]:
    service, version = _service(spec.service), spec.version
    if spec.source == "github":
        payload = _fixture("github_deployment_status")
        payload["deployment"].update(id=_number(spec.number), created_at=_at(spec.minute))
        payload["deployment"]["payload"] = {"service": service, "version": version}
        payload["deployment_status"].update(
            state="failure" if spec.failed else "success", updated_at=_at(spec.minute + 3)
        )
        hooks = [Webhook("github", json.dumps(payload), (("X-GitHub-Event", "deployment_status"),))]
        if spec.with_deployment_event:
            deployment = _fixture("github_deployment")
            # One deployment of one repository (the two fixtures name different ones).
            deployment.update(deployment=payload["deployment"], repository=payload["repository"])
            hooks.append(Webhook("github", json.dumps(deployment), (("X-GitHub-Event", "deployment"),)))
        return hooks
    if spec.source == "gitlab":
        payload = _fixture("gitlab_deployment")
        payload.update(
            deployment_id=_number(spec.number),
            status="failed" if spec.failed else "success",
            status_changed_at=_at(spec.minute).replace("T", " ").replace("Z", " +0000"),
            ref=version,
        )
        payload["project"]["name"] = service
        return [Webhook("gitlab", json.dumps(payload), (("X-Gitlab-Event", "Deployment Hook"),))]
    if spec.source == "argocd":
        payload = _fixture("argocd_deployed")
        payload.update(
            app=f"{service}-app",
            service=service,
            revision=f"{spec.number:040x}",
            images=[f"ghcr.io/acme-shop/{service}:{version}"],
            phase="Failed" if spec.failed else "Succeeded",
            started_at=_at(spec.minute),
            finished_at=_at(spec.minute + 1),
        )
        return [Webhook("argocd", json.dumps(payload), ())]
    payload = _fixture("flux_kustomization_succeeded")
    payload["involvedObject"]["name"] = service
    payload.update(
        timestamp=_at(spec.minute, spec.number % 60),
        severity="error" if spec.failed else "info",
        reason="ReconciliationFailed" if spec.failed else "ReconciliationSucceeded",
    )
    payload["metadata"].update(
        {"kustomize.toolkit.fluxcd.io/revision": f"{version}@sha1:{spec.number:040x}", "env": "production"}
    )
    return [Webhook("flux", json.dumps(payload), ())]


def _alert_webhooks(spec: AlertSpec) -> list[Webhook]:
    def notification(status: str) -> Webhook:
        payload = _fixture("alertmanager_v4")
        alert = payload["alerts"][0]
        alert.update(
            status=status,
            labels={"alertname": f"Replay{spec.number}", "service": _service(spec.service), "severity": "critical"},
            startsAt=_at(spec.minute),
            endsAt=_at(spec.minute + (spec.resolved_after or 0)) if status == "resolved" else "0001-01-01T00:00:00Z",
            fingerprint=f"{RUN}{spec.number:08x}",
        )
        payload.update(status=status, alerts=[alert], commonLabels={"alertname": f"Replay{spec.number}"})
        return Webhook("alertmanager", json.dumps(payload), ())

    hooks = [notification("firing")]
    if spec.renotified:
        hooks.append(notification("firing"))
    if spec.resolved_after is not None:
        hooks.append(notification("resolved"))
    return hooks


def _pagerduty_webhooks(spec: PagerDutySpec) -> list[Webhook]:
    def event(name: str, event_type: str, occurred_at: str) -> Webhook:
        payload = _fixture(name)
        payload["event"].update(id=f"{RUN}-{spec.number}-{event_type}", occurred_at=occurred_at)
        data = payload["event"]["data"]
        data.update(id=f"P{RUN}{spec.number}", created_at=_at(spec.minute), title=f"Replay page {spec.number}")
        data["service"]["summary"] = _service(spec.service)
        data["priority"] = {**_fixture("pagerduty_incident_triggered")["event"]["data"]["priority"]}
        if spec.priority is None:
            data["priority"] = None
        else:
            data["priority"]["summary"] = spec.priority
        return Webhook("pagerduty", json.dumps(payload), ())

    hooks = [event("pagerduty_incident_triggered", "incident.triggered", _at(spec.minute, 2))]
    if spec.resolved_after is not None:
        hooks.append(event("pagerduty_incident_resolved", "incident.resolved", _at(spec.minute + spec.resolved_after)))
    return hooks


deploys = st.lists(
    st.builds(
        DeploySpec,
        source=st.sampled_from(["github", "gitlab", "argocd", "flux"]),
        number=st.integers(1, 10**6),
        service=st.integers(0, SERVICES - 1),
        version=st.sampled_from(VERSIONS),
        minute=st.integers(0, 240),
        failed=st.booleans(),
        with_deployment_event=st.booleans(),
    ),
    max_size=6,
    unique_by=lambda d: d.number,
)
alerts = st.lists(
    st.builds(
        AlertSpec,
        number=st.integers(0, 99),
        service=st.integers(0, SERVICES - 1),
        minute=st.integers(0, 240),
        resolved_after=st.none() | st.integers(1, 90),
        renotified=st.booleans(),
    ),
    max_size=3,
    unique_by=lambda a: a.number,
)
pages = st.lists(
    st.builds(
        PagerDutySpec,
        number=st.integers(0, 99),
        service=st.integers(0, SERVICES - 1),
        minute=st.integers(0, 240),
        resolved_after=st.none() | st.integers(1, 90),
        priority=st.none() | st.just("P1"),
    ),
    max_size=2,
    unique_by=lambda p: p.number,
)


@st.composite
def streams(draw: st.DrawFn) -> list[Webhook]:
    hooks = [h for spec in draw(deploys) for h in _deploy_webhooks(spec)]
    hooks += [h for spec in draw(alerts) for h in _alert_webhooks(spec)]
    hooks += [h for spec in draw(pages) for h in _pagerduty_webhooks(spec)]
    return hooks


class Run:
    """One namespace: RUN and the numeric ids' first digit replaced by this run's own."""

    def __init__(self, digit: int) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.digit = str(digit)

    def render(self, text: str) -> str:
        return text.replace("RUNDIGIT", self.digit).replace(RUN, self.tag)

    def deliver(self, client: httpx.Client, hook: Webhook, delivery_id: str) -> None:
        body = self.render(hook.body)
        # Numeric ids were written as strings: make them JSON numbers again.
        body = re.sub(rf'"({self.digit}\d{{8}})"', r"\1", body)
        headers = {"Content-Type": "application/json", **dict(hook.headers)}
        if hook.source == "github":
            headers["X-GitHub-Delivery"] = delivery_id
        if hook.source == "gitlab":
            headers["X-Gitlab-Event-UUID"] = delivery_id
        response = client.post(f"/api/v1/webhooks/{hook.source}", content=body.encode(), headers=headers)
        assert response.status_code in (200, 201), f"{hook.source}: {response.status_code} {response.text}"

    def listings(self, client: httpx.Client) -> dict[str, Any]:
        """The deploys and incidents of this run's services, with its names and ids made run-neutral."""
        deploys: list[dict[str, Any]] = []
        incidents: list[dict[str, Any]] = []
        for index in range(SERVICES):
            params = {"service": _service(index).replace(RUN, self.tag), **WINDOW}
            deploys += client.get("/api/v1/deploys", params=params).json()["deploys"]
            incidents += client.get("/api/v1/incidents", params=params).json()["incidents"]
        text = json.dumps({"deploys": deploys, "incidents": incidents}).replace(self.tag, RUN)
        text = re.sub(rf"\b{self.digit}(\d{{8}})\b", r"N\1", text)
        neutral: dict[str, Any] = json.loads(text)
        # Incident ids hash the run's fingerprints: name each by what it is instead.
        for incident in neutral["incidents"]:
            incident["incident_id"] = f"{incident['source']}|{incident['title']}"
            for name in UNCOMPARED:
                incident.pop(name)
        neutral["deploys"].sort(key=lambda d: d["deploy_id"])
        neutral["incidents"].sort(key=lambda i: i["incident_id"])
        return neutral


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(stream=streams(), data=st.data())
def test_replaying_or_reordering_webhooks_leaves_the_same_deploys_and_incidents(
    server: Server, stream: list[Webhook], data: st.DataObject
) -> None:
    delivery_ids = [str(uuid.uuid4()) for _ in stream]
    order = data.draw(st.permutations(range(len(stream))), label="order")
    fresh_ids_on_replay = data.draw(st.booleans(), label="fresh delivery ids on replay")
    first, shuffled = Run(1), Run(2)
    with httpx.Client(base_url=server.url(), timeout=60) as client:
        for hook, delivery_id in zip(stream, delivery_ids, strict=True):
            first.deliver(client, hook, delivery_id)
        once = first.listings(client)
        for hook, delivery_id in zip(stream, delivery_ids, strict=True):
            first.deliver(client, hook, str(uuid.uuid4()) if fresh_ids_on_replay else delivery_id)
        twice = first.listings(client)
        # Delivery ids are global (a redelivery is recognised by its id alone): the other namespace gets its own.
        for index in order:
            shuffled.deliver(client, stream[index], f"{shuffled.tag}-{index}")
        reordered = shuffled.listings(client)
    assert twice == once
    assert reordered == once


def test_a_pagerduty_resolution_delivered_before_its_trigger_opens_the_incident_when_pagerduty_created_it(
    server: Server, service_name: str
) -> None:
    """Regression: the resolution used to open the incident at its own time (time to resolve 0)."""
    spec = PagerDutySpec(number=1, service=0, minute=10, resolved_after=30, priority="P1")
    run = Run(3)
    hooks = _pagerduty_webhooks(spec)
    with httpx.Client(base_url=server.url(), timeout=60) as client:
        for hook in reversed(hooks):
            run.deliver(client, hook, str(uuid.uuid4()))
        [incident] = run.listings(client)["incidents"]
    assert incident["opened_at"] == _at(10)
    assert incident["resolved_at"] == _at(40)
    assert incident["time_to_resolve_s"] == 30 * 60
    assert incident["status"] == "resolved"
