"""Webhook payloads in the platforms' own formats become exactly these deploy and alert records."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from correlator.errors import BadRequest, Unauthorized, UndecodableBody
from correlator.events.alertmanager import labels_fingerprint, parse_alertmanager
from correlator.events.argocd import parse_argocd
from correlator.events.fields import Body
from correlator.events.flux import parse_flux
from correlator.events.github import parse_github
from correlator.events.gitlab import parse_gitlab
from correlator.events.grafana import parse_grafana
from correlator.events.options import (
    DEFAULT_SERVICE_LABELS,
    WebhookOptions,
    parse_service_labels,
    parse_service_map,
)
from correlator.events.pagerduty import parse_pagerduty
from correlator.events.records import AlertEvent, Delivery, DeployEvent
from correlator.events.signatures import (
    verify_flux,
    verify_github,
    verify_gitlab,
    verify_pagerduty,
    verify_webhook,
)
from correlator.events.versions import image_tag, tag_name
from correlator.events.webhooks import ALERT_WEBHOOKS, DEPLOY_WEBHOOKS, WEBHOOKS, WebhookParser

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SECRET = "test-webhook-secret"
DELETE = object()

GITHUB_DEPLOYMENT = {"x-github-event": "deployment", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
GITHUB_STATUS = {"x-github-event": "deployment_status", "x-github-delivery": "9a1b5c0e-2f3d-11f1-8b6a-1c2e3d4f5a6b"}
GITLAB = {"x-gitlab-event": "Deployment Hook", "x-gitlab-event-uuid": "0d5a7c1e-4f9b-4b8e-a2a1-5e6f7a8b9c0d"}
PAYMENTS_SHA = "4c1d9e2b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d"
CART_SHA = "7e1b2c3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
FLUX_SHA = "5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b"
ARGO_SHA = "a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4"


def at(text: str) -> datetime:
    """An expected time, written as RFC 3339."""
    return datetime.fromisoformat(text).astimezone(UTC)


def raw(name: str) -> bytes:
    """A fixture's bytes, as the platform would send them."""
    return (FIXTURES / f"{name}.json").read_bytes()


def edited(name: str, changes: Mapping[str, object]) -> dict[str, Any]:
    """A fixture with fields replaced (or removed with DELETE) by dotted path; list indices are numbers."""
    document: dict[str, Any] = json.loads(raw(name))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = copy.deepcopy(value)
        else:
            node[last] = copy.deepcopy(value)
    return document


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- Deploys ------------------------------------------------------------------------------------------------

GITHUB_CHECKOUT = DeployEvent(
    service="checkout",
    version="v1.4.2",
    source="github",
    deploy_id="github-1876543210",
    environment="production",
    revision="9f2c1a4e8b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a",
    started_at=at("2026-04-28T09:58:02Z"),
    attributes={"github.repository": "acme-shop/checkout", "github.ref": "v1.4.2", "github.task": "deploy"},
)
GITHUB_PAYMENTS = DeployEvent(
    service="payments",
    version="4c1d9e2",
    source="github",
    deploy_id="github-1876549001",
    environment="production",
    revision=PAYMENTS_SHA,
    status="succeeded",
    started_at=at("2026-04-28T10:01:12Z"),
    finished_at=at("2026-04-28T10:04:41Z"),
    url="https://github.com/acme-shop/shop-payments/actions/runs/14012345678/job/39123456789",
    attributes={"github.repository": "acme-shop/shop-payments", "github.ref": "main", "github.task": "deploy"},
)
PAYMENTS_MAP = WebhookOptions(service_map={"shop-payments": "payments"})
GITLAB_CART = DeployEvent(
    service="cart",
    version="7e1b2c3d",
    source="gitlab",
    deploy_id="gitlab-412",
    environment="production",
    revision=CART_SHA,
    status="succeeded",
    finished_at=at("2026-04-28T10:50:00Z"),
    url="https://gitlab.acme-shop.example/shop/cart/-/jobs/9031",
    attributes={"gitlab.project": "shop/cart", "gitlab.ref": "main", "gitlab.environment_tier": "production"},
)
FLUX_CART_AT = at("2026-04-28T11:02:17Z")
FLUX_CART = DeployEvent(
    service="cart",
    version="5f3c2a1",
    source="flux",
    deploy_id=f"flux-cart-main@sha1:{FLUX_SHA}-{int(FLUX_CART_AT.timestamp())}",
    environment="staging",
    revision=FLUX_SHA,
    status="succeeded",
    started_at=FLUX_CART_AT,
    finished_at=FLUX_CART_AT,
    attributes={
        "flux.kind": "Kustomization",
        "flux.namespace": "flux-system",
        "flux.reason": "ReconciliationSucceeded",
        "flux.revision": f"main@sha1:{FLUX_SHA}",
        "flux.controller": "kustomize-controller",
    },
)
FLUX_PAYMENTS_AT = at("2026-04-28T11:20:05Z")
FLUX_PAYMENTS = DeployEvent(
    service="payments",
    version="2.3.1",
    source="flux",
    deploy_id=f"flux-payments-2.3.1-{int(FLUX_PAYMENTS_AT.timestamp())}",
    environment="production",
    revision="2.3.1",
    status="failed",
    started_at=FLUX_PAYMENTS_AT,
    finished_at=FLUX_PAYMENTS_AT,
    attributes={
        "flux.kind": "HelmRelease",
        "flux.namespace": "shop",
        "flux.reason": "UpgradeFailed",
        "flux.revision": "2.3.1",
        "flux.controller": "helm-controller",
    },
)
ARGO_START = at("2026-04-28T12:00:03Z")
ARGO_CHECKOUT = DeployEvent(
    service="checkout",
    version="1.5.0",
    source="argocd",
    deploy_id=f"argocd-shop-checkout-{ARGO_SHA}-{int(ARGO_START.timestamp())}",
    environment="production",
    revision=ARGO_SHA,
    status="succeeded",
    started_at=ARGO_START,
    finished_at=at("2026-04-28T12:00:41Z"),
    url="https://argocd.acme-shop.example/applications/argocd/shop-checkout",
    attributes={
        "argocd.app": "shop-checkout",
        "argocd.phase": "Succeeded",
        "argocd.health": "Healthy",
        "argocd.namespace": "shop",
        "argocd.cluster": "https://kubernetes.default.svc",
        "argocd.repo_url": "https://github.com/acme-shop/deploy.git",
        "argocd.images": "ghcr.io/acme-shop/checkout:1.5.0,docker.io/envoyproxy/envoy:v1.32.1",
    },
)


def deploy(record: DeployEvent, **changes: Any) -> DeployEvent:
    """An expected record differing from a base one in a few fields."""
    values = {name: getattr(record, name) for name in record.__dataclass_fields__}
    values.update(changes)
    return DeployEvent(**values)


DEPLOY_CASES = [
    pytest.param(
        parse_github, raw("github_deployment"), GITHUB_DEPLOYMENT, None, GITHUB_CHECKOUT, id="github-deployment-tag-ref"
    ),
    pytest.param(
        parse_github,
        raw("github_deployment_status"),
        GITHUB_STATUS,
        PAYMENTS_MAP,
        GITHUB_PAYMENTS,
        id="github-status-success-branch-ref-short-sha-service-map",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment_status.state": "in_progress"}),
        GITHUB_STATUS,
        PAYMENTS_MAP,
        deploy(GITHUB_PAYMENTS, status="started", finished_at=None),
        id="github-status-in-progress-is-started",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment_status.state": "error"}),
        GITHUB_STATUS,
        PAYMENTS_MAP,
        deploy(GITHUB_PAYMENTS, status="failed"),
        id="github-status-error-is-failed",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment_status.state": "waiting"}),
        GITHUB_STATUS,
        PAYMENTS_MAP,
        deploy(GITHUB_PAYMENTS, status=None, finished_at=None),
        id="github-status-unknown-state-has-no-status",
    ),
    pytest.param(
        parse_github,
        edited(
            "github_deployment_status",
            {"deployment.payload": {"service": "payments-api", "version": "2.3.0"}, "deployment_status.target_url": ""},
        ),
        GITHUB_STATUS,
        None,
        deploy(GITHUB_PAYMENTS, service="payments-api", version="2.3.0", url="https://payments.acme-shop.example"),
        id="github-payload-service-and-version-win-environment-url",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment.payload": '{"version": "2.3.0"}'}),
        GITHUB_STATUS,
        PAYMENTS_MAP,
        deploy(GITHUB_PAYMENTS, version="2.3.0"),
        id="github-payload-as-json-string",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"deployment.ref": "refs/tags/release-7"}),
        GITHUB_DEPLOYMENT,
        None,
        deploy(
            GITHUB_CHECKOUT,
            version="release-7",
            attributes={**GITHUB_CHECKOUT.attributes, "github.ref": "refs/tags/release-7"},
        ),
        id="github-refs-tags-ref-is-a-tag",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"deployment.ref": "9f2c1a4"}),
        GITHUB_DEPLOYMENT,
        None,
        deploy(GITHUB_CHECKOUT, version="9f2c1a4", attributes={**GITHUB_CHECKOUT.attributes, "github.ref": "9f2c1a4"}),
        id="github-sha-ref-is-not-a-tag",
    ),
    pytest.param(parse_gitlab, raw("gitlab_deployment"), GITLAB, None, GITLAB_CART, id="gitlab-success-branch-ref"),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"status": "running"}),
        GITLAB,
        None,
        deploy(GITLAB_CART, status="started", started_at=at("2026-04-28T10:50:00Z"), finished_at=None),
        id="gitlab-running-is-started",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"status": "canceled", "status_changed_at": "2026-04-28T10:51:00Z"}),
        GITLAB,
        None,
        deploy(GITLAB_CART, status="failed", finished_at=at("2026-04-28T10:51:00Z")),
        id="gitlab-canceled-is-failed-rfc3339-time",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"ref": "v0.9.1", "tag": True}),
        GITLAB,
        None,
        deploy(GITLAB_CART, version="v0.9.1", attributes={**GITLAB_CART.attributes, "gitlab.ref": "v0.9.1"}),
        id="gitlab-tag-flag-true",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"ref": "v0.9.1", "tag": False}),
        GITLAB,
        None,
        deploy(GITLAB_CART, attributes={**GITLAB_CART.attributes, "gitlab.ref": "v0.9.1"}),
        id="gitlab-tag-flag-false-wins-over-the-name",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"ref": "v0.9.1"}),
        GITLAB,
        None,
        deploy(GITLAB_CART, version="v0.9.1", attributes={**GITLAB_CART.attributes, "gitlab.ref": "v0.9.1"}),
        id="gitlab-tag-like-ref-without-flag",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"variables": [{"key": "SERVICE", "value": "cart-api"}]}),
        GITLAB,
        WebhookOptions(service_map={"cart-api": "cart-v2"}),
        deploy(GITLAB_CART, service="cart-v2"),
        id="gitlab-service-variable-then-service-map",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"deployment_id": DELETE, "commit_url": DELETE, "ref": DELETE}),
        {"x-gitlab-event": "Deployment Hook", "idempotency-key": "retry-key-1"},
        None,
        deploy(
            GITLAB_CART, deploy_id=None, revision="7e1b2c3d", attributes={**GITLAB_CART.attributes, "gitlab.ref": None}
        ),
        id="gitlab-older-hook-without-deployment-id-or-commit-url",
    ),
    pytest.param(
        parse_flux, raw("flux_kustomization_succeeded"), {}, None, FLUX_CART, id="flux-kustomization-succeeded"
    ),
    pytest.param(parse_flux, raw("flux_helmrelease_failed"), {}, None, FLUX_PAYMENTS, id="flux-helmrelease-failed"),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"metadata": {"revision": f"v2.0.1@sha1:{FLUX_SHA}"}}),
        {},
        None,
        deploy(
            FLUX_CART,
            version="v2.0.1",
            environment=None,
            deploy_id=f"flux-cart-v2.0.1@sha1:{FLUX_SHA}-{int(FLUX_CART_AT.timestamp())}",
            attributes={**FLUX_CART.attributes, "flux.revision": f"v2.0.1@sha1:{FLUX_SHA}"},
        ),
        id="flux-tag-revision",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"metadata": {"revision": f"main/{FLUX_SHA}", "environment": "qa"}}),
        {},
        None,
        deploy(
            FLUX_CART,
            environment="qa",
            deploy_id=f"flux-cart-main-{FLUX_SHA}-{int(FLUX_CART_AT.timestamp())}",
            attributes={**FLUX_CART.attributes, "flux.revision": f"main/{FLUX_SHA}"},
        ),
        id="flux-legacy-branch-slash-sha-revision",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"reason": "Progressing", "metadata.service": "cart-api"}),
        {},
        None,
        deploy(
            FLUX_CART,
            service="cart-api",
            status="started",
            finished_at=None,
            attributes={**FLUX_CART.attributes, "flux.reason": "Progressing"},
        ),
        id="flux-progressing-is-started-metadata-service",
    ),
    pytest.param(
        parse_argocd, raw("argocd_deployed"), {}, None, ARGO_CHECKOUT, id="argocd-deployed-image-named-like-service"
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"service": "", "images": ["ghcr.io/acme-shop/storefront:2.0.0"]}),
        {},
        WebhookOptions(service_map={"shop-checkout": "checkout"}),
        deploy(
            ARGO_CHECKOUT,
            version="2.0.0",
            attributes={**ARGO_CHECKOUT.attributes, "argocd.images": "ghcr.io/acme-shop/storefront:2.0.0"},
        ),
        id="argocd-single-image-tag-app-name-through-service-map",
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"images": [], "phase": "Running", "health": "Progressing"}),
        {},
        None,
        deploy(
            ARGO_CHECKOUT,
            version="a3f9c2e",
            status="started",
            finished_at=None,
            attributes={
                **ARGO_CHECKOUT.attributes,
                "argocd.images": None,
                "argocd.phase": "Running",
                "argocd.health": "Progressing",
            },
        ),
        id="argocd-running-no-images-short-revision",
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"phase": "Failed", "health": "Missing"}),
        {},
        None,
        deploy(
            ARGO_CHECKOUT,
            status="failed",
            attributes={**ARGO_CHECKOUT.attributes, "argocd.phase": "Failed", "argocd.health": "Missing"},
        ),
        id="argocd-sync-failed",
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"health": "Degraded"}),
        {},
        None,
        deploy(ARGO_CHECKOUT, status="failed", attributes={**ARGO_CHECKOUT.attributes, "argocd.health": "Degraded"}),
        id="argocd-health-degraded-is-failed",
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"health": "Progressing"}),
        {},
        None,
        deploy(
            ARGO_CHECKOUT,
            status="started",
            finished_at=None,
            attributes={**ARGO_CHECKOUT.attributes, "argocd.health": "Progressing"},
        ),
        id="argocd-synced-but-still-rolling-out-is-started",
    ),
]


@pytest.mark.parametrize(("parser", "body", "headers", "options", "expected"), DEPLOY_CASES)
def test_deploy_webhooks_map_to_exact_records(
    parser: WebhookParser,
    body: Body,
    headers: dict[str, str],
    options: WebhookOptions | None,
    expected: DeployEvent,
) -> None:
    delivery = parser(body, headers, now=NOW, options=options or WebhookOptions())
    expected = deploy(expected, attributes={k: v for k, v in expected.attributes.items() if v is not None})
    assert delivery.deploys == (expected,)
    assert delivery.alerts == ()
    assert delivery.delivery_id == (
        headers.get("x-github-delivery") or headers.get("x-gitlab-event-uuid") or headers.get("idempotency-key")
    )


@pytest.mark.parametrize(
    ("parser", "body", "headers"),
    [
        pytest.param(
            parse_github, raw("github_ping"), {"x-github-event": "ping", "x-github-delivery": "p-1"}, id="github-ping"
        ),
        pytest.param(parse_github, raw("github_deployment"), {"x-github-event": "push"}, id="github-other-event"),
        pytest.param(
            parse_github,
            edited("github_deployment_status", {"deployment_status.state": "inactive"}),
            GITHUB_STATUS,
            id="github-inactive",
        ),
        pytest.param(
            parse_gitlab, raw("gitlab_deployment"), {"x-gitlab-event": "Pipeline Hook"}, id="gitlab-other-hook"
        ),
        pytest.param(
            parse_gitlab, edited("gitlab_deployment", {"object_kind": "pipeline"}), {}, id="gitlab-other-object-kind"
        ),
        pytest.param(
            parse_flux,
            edited("flux_kustomization_succeeded", {"involvedObject.kind": "GitRepository", "reason": "NewArtifact"}),
            {},
            id="flux-source-event",
        ),
        pytest.param(
            parse_flux,
            edited("flux_kustomization_succeeded", {"reason": "DependencyNotReady"}),
            {},
            id="flux-info-not-a-rollout",
        ),
        pytest.param(
            parse_pagerduty,
            edited("pagerduty_incident_triggered", {"event.event_type": "incident.annotated"}),
            {},
            id="pagerduty-annotated",
        ),
        pytest.param(
            parse_pagerduty,
            edited("pagerduty_incident_triggered", {"event.event_type": "pagey.ping", "event.data": DELETE}),
            {},
            id="pagerduty-ping",
        ),
        pytest.param(parse_alertmanager, edited("alertmanager_v4", {"alerts": []}), {}, id="alertmanager-no-alerts"),
    ],
)
def test_deliveries_that_carry_nothing_we_record_are_empty(
    parser: WebhookParser, body: Body, headers: dict[str, str]
) -> None:
    delivery = parser(body, headers, now=NOW)
    assert delivery.deploys == ()
    assert delivery.alerts == ()


def test_delivery_ids_come_from_the_platform() -> None:
    assert parse_github(
        raw("github_ping"), {"x-github-event": "ping", "x-github-delivery": "p-1"}, now=NOW
    ) == Delivery("p-1")
    assert parse_pagerduty(raw("pagerduty_incident_resolved"), {}, now=NOW).delivery_id == "01DXN5R2VC4T8M1Q6S9P3K7W2E"
    assert parse_flux(raw("flux_kustomization_succeeded"), {}, now=NOW).delivery_id is None


# --- Alerts -------------------------------------------------------------------------------------------------

AM_CHECKOUT = AlertEvent(
    source="alertmanager",
    fingerprint="5e1f4a3b2c7d9e08",
    action="firing",
    starts_at=at("2026-04-28T10:03:30.123456Z"),
    title="HighErrorRate: checkout error ratio above 5%",
    service="checkout",
    severity="critical",
    labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "Critical", "team": "shop"},
    summary="5.8% of checkout requests failed over the last 5 minutes.",
    url="http://prometheus.monitoring:9090/graph?g0.expr=job%3Acheckout_error_ratio%3Arate5m+%3E+0.05&g0.tab=1",
)
AM_PAYMENTS = AlertEvent(
    source="alertmanager",
    fingerprint="a07c3d9e1b2f4c68",
    action="resolved",
    starts_at=at("2026-04-28T09:40:00Z"),
    ends_at=at("2026-04-28T09:55:00Z"),
    title="HighErrorRate: payments error ratio above 5%",
    service="payments",
    severity="warning",
    labels={"alertname": "HighErrorRate", "job": "payments-api", "severity": "warning", "team": "shop"},
    summary="payments error ratio above 5%",
    url="http://prometheus.monitoring:9090/graph?g0.expr=job%3Apayments_error_ratio%3Arate5m+%3E+0.05&g0.tab=1",
)
GRAFANA_CHECKOUT = AlertEvent(
    source="grafana",
    fingerprint="c6eadffa33fcdf37",
    action="firing",
    starts_at=at("2026-04-28T10:04:00Z"),
    title="CheckoutLatencyHigh: checkout p95 above 800 ms",
    service="checkout",
    severity="page",
    labels={
        "alertname": "CheckoutLatencyHigh",
        "grafana_folder": "Shop",
        "service_name": "checkout",
        "severity": "page",
    },
    summary="checkout p95 above 800 ms",
    url="https://grafana.acme-shop.example/d/shop-red?orgId=1&viewPanel=4",
)
GRAFANA_CART = AlertEvent(
    source="grafana",
    fingerprint="bc97ff14869b13e3",
    action="resolved",
    starts_at=at("2026-04-28T08:00:00Z"),
    ends_at=at("2026-04-28T08:30:00Z"),
    title="CartQueueBacklog",
    service="cart",
    labels={"alertname": "CartQueueBacklog", "grafana_folder": "Shop", "app": "cart"},
    url="https://grafana.acme-shop.example/alerting/grafana/ab7d2m4k9q/view?orgId=1",
)
PD_TRIGGERED = AlertEvent(
    source="pagerduty",
    fingerprint="Q2K7ZP4XH9D1LM",
    action="firing",
    starts_at=at("2026-04-28T10:06:10Z"),
    title="Checkout error ratio above 5%",
    service="checkout",
    severity="high",
    labels={
        "pagerduty.service": "Checkout API",
        "pagerduty.urgency": "high",
        "pagerduty.priority": "P1",
        "pagerduty.incident_number": "1482",
        "pagerduty.incident_key": "5e1f4a3b2c7d9e08",
    },
    url="https://acme-shop.pagerduty.com/incidents/Q2K7ZP4XH9D1LM",
)
PD_RESOLVED_AT = at("2026-04-28T10:41:55.102Z")
PD_MAP = WebhookOptions(service_map={"Checkout API": "checkout"})


def alert(record: AlertEvent, **changes: Any) -> AlertEvent:
    """An expected alert differing from a base one in a few fields."""
    values = {name: getattr(record, name) for name in record.__dataclass_fields__}
    values.update(changes)
    return AlertEvent(**values)


ALERT_CASES = [
    pytest.param(
        parse_alertmanager,
        raw("alertmanager_v4"),
        WebhookOptions(service_map={"payments-api": "payments"}),
        (AM_CHECKOUT, AM_PAYMENTS),
        id="alertmanager-firing-and-resolved-service-from-job-mapped",
    ),
    pytest.param(
        parse_alertmanager,
        raw("alertmanager_v4"),
        WebhookOptions(service_labels=("team",)),
        (alert(AM_CHECKOUT, service="shop"), alert(AM_PAYMENTS, service="shop")),
        id="alertmanager-configured-service-labels",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.1.endsAt": "0001-01-01T00:00:00Z", "commonLabels.service": "payments"}),
        None,
        (
            alert(AM_CHECKOUT, labels={**AM_CHECKOUT.labels}),
            alert(AM_PAYMENTS, ends_at=None, labels={"service": "payments", **AM_PAYMENTS.labels}),
        ),
        id="alertmanager-zero-end-is-none-common-labels-fill-in",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.0.fingerprint": DELETE, "alerts.1.fingerprint": ""}),
        WebhookOptions(service_map={"payments-api": "payments"}),
        (
            alert(AM_CHECKOUT, fingerprint=labels_fingerprint(AM_CHECKOUT.labels)),
            alert(AM_PAYMENTS, fingerprint=labels_fingerprint(AM_PAYMENTS.labels)),
        ),
        id="alertmanager-fingerprint-from-labels-when-absent",
    ),
    pytest.param(parse_grafana, raw("grafana_unified"), None, (GRAFANA_CHECKOUT, GRAFANA_CART), id="grafana-unified"),
    pytest.param(
        parse_pagerduty, raw("pagerduty_incident_triggered"), PD_MAP, (PD_TRIGGERED,), id="pagerduty-triggered"
    ),
    pytest.param(
        parse_pagerduty,
        raw("pagerduty_incident_resolved"),
        PD_MAP,
        (
            alert(
                PD_TRIGGERED,
                action="resolved",
                ends_at=PD_RESOLVED_AT,
                labels={k: v for k, v in PD_TRIGGERED.labels.items() if k != "pagerduty.priority"},
            ),
        ),
        id="pagerduty-resolved",
    ),
    pytest.param(
        parse_pagerduty,
        edited(
            "pagerduty_incident_triggered", {"event.event_type": "incident.acknowledged", "event.data.urgency": DELETE}
        ),
        None,
        (
            alert(
                PD_TRIGGERED,
                action="acknowledged",
                ends_at=at("2026-04-28T10:06:12.481Z"),
                service="Checkout API",
                severity="p1",
                labels={k: v for k, v in PD_TRIGGERED.labels.items() if k != "pagerduty.urgency"},
            ),
        ),
        id="pagerduty-acknowledged-severity-from-priority-unmapped-service",
    ),
]


@pytest.mark.parametrize(("parser", "body", "options", "expected"), ALERT_CASES)
def test_alert_webhooks_map_to_exact_records(
    parser: WebhookParser, body: Body, options: WebhookOptions | None, expected: tuple[AlertEvent, ...]
) -> None:
    delivery = parser(body, {}, now=NOW, options=options or WebhookOptions())
    assert delivery.alerts == expected
    assert delivery.deploys == ()


def test_alert_times_are_aware_utc() -> None:
    for parser, name in ((parse_alertmanager, "alertmanager_v4"), (parse_grafana, "grafana_unified")):
        for record in parser(raw(name), {}, now=NOW).alerts:
            assert record.starts_at.tzinfo is UTC
            assert record.ends_at is None or record.ends_at.tzinfo is UTC


# --- Refusals -----------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    pytest.param(
        parse_github,
        b'{"deployment": ',
        GITHUB_STATUS,
        "github deployment_status: the body is not valid JSON",
        id="malformed-json",
    ),
    pytest.param(parse_github, b"\xff\xfe\xfa", GITHUB_STATUS, "the body is not valid JSON", id="not-utf8"),
    pytest.param(
        parse_github,
        b"[1, 2]",
        GITHUB_STATUS,
        "github deployment_status: expected a JSON object, got a list",
        id="body-not-an-object",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment.environment": DELETE}),
        GITHUB_STATUS,
        "github deployment_status: missing deployment.environment",
        id="github-missing-environment",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"deployment.id": [1]}),
        GITHUB_DEPLOYMENT,
        "github deployment: deployment.id: expected a number or a string, got a list",
        id="github-id-wrong-type",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment_status", {"deployment_status": DELETE}),
        GITHUB_STATUS,
        "github deployment_status: missing deployment_status",
        id="github-missing-status-object",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"deployment.sha": DELETE, "deployment.ref": "main"}),
        GITHUB_DEPLOYMENT,
        "github deployment: a deploy needs a service and a version; this payload names no version",
        id="github-no-version",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"repository": DELETE}),
        GITHUB_DEPLOYMENT,
        "github deployment: a deploy needs a service and a version; this payload names no service",
        id="github-no-service",
    ),
    pytest.param(
        parse_github,
        edited("github_deployment", {"deployment.created_at": "2026-05-02T12:00:01Z"}),
        GITHUB_DEPLOYMENT,
        "github deployment: deployment.created_at: 2026-05-02T12:00:01+00:00 is more than a day in the future",
        id="future-time",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"environment": None}),
        GITLAB,
        "gitlab deployment: missing environment",
        id="gitlab-missing-environment",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"short_sha": DELETE, "ref": DELETE}),
        GITLAB,
        "gitlab deployment: a deploy needs a service and a version",
        id="gitlab-no-version",
    ),
    pytest.param(
        parse_gitlab,
        edited("gitlab_deployment", {"status_changed_at": "28/04/2026 10:50"}),
        GITLAB,
        "gitlab deployment: status_changed_at: expected an RFC 3339 time",
        id="gitlab-bad-time",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"involvedObject": DELETE}),
        {},
        "flux: missing involvedObject",
        id="flux-missing-involved-object",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"metadata": {"env": "staging"}}),
        {},
        "flux: a deploy needs a service and a version; this payload names no version",
        id="flux-no-revision",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"timestamp": "2026-04-28T11:02:17"}),
        {},
        "flux: timestamp: expected a time with an offset",
        id="flux-time-without-offset",
    ),
    pytest.param(
        parse_flux,
        edited("flux_kustomization_succeeded", {"metadata": {"revision": 42}}),
        {},
        "flux: metadata.revision: expected a string, got a number",
        id="flux-metadata-not-strings",
    ),
    pytest.param(
        parse_argocd, edited("argocd_deployed", {"app": ""}), {}, "argocd: missing app", id="argocd-missing-app"
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"images": [], "revision": ""}),
        {},
        "argocd: a deploy needs a service and a version",
        id="argocd-no-version",
    ),
    pytest.param(
        parse_argocd,
        edited("argocd_deployed", {"images": "ghcr.io/a:1"}),
        {},
        "argocd: images: expected a list, got a string",
        id="argocd-images-not-a-list",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"version": "3"}),
        {},
        "alertmanager: expected webhook payload version '4', got '3'",
        id="alertmanager-version",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts": {"status": "firing"}}),
        {},
        "alertmanager: alerts: expected a list, got an object",
        id="alertmanager-alerts-not-a-list",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.1.status": "pending"}),
        {},
        "alertmanager: alerts[1].status: expected 'firing' or 'resolved', got 'pending'",
        id="alertmanager-bad-status",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.0.startsAt": "0001-01-01T00:00:00Z"}),
        {},
        "alertmanager: missing alerts[0].startsAt",
        id="alertmanager-zero-start",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.1.startsAt": "1999-12-31T23:59:59Z"}),
        {},
        "alertmanager: alerts[1].startsAt: 1999-12-31T23:59:59+00:00 is before 2000",
        id="too-old-time",
    ),
    pytest.param(
        parse_alertmanager,
        edited("alertmanager_v4", {"alerts.0.labels.severity": 2}),
        {},
        "alertmanager: alerts[0].labels.severity: expected a string, got a number",
        id="alertmanager-label-not-a-string",
    ),
    pytest.param(
        parse_grafana,
        {"title": "[Alerting] old", "ruleName": "old", "state": "alerting", "evalMatches": []},
        {},
        "grafana: this is a legacy alerting notification",
        id="grafana-legacy",
    ),
    pytest.param(
        parse_grafana,
        edited("grafana_unified", {"alerts.1.endsAt": "2026-05-03T00:00:00Z"}),
        {},
        "grafana: alerts[1].endsAt: 2026-05-03T00:00:00+00:00 is more than a day in the future",
        id="grafana-future-end",
    ),
    pytest.param(
        parse_pagerduty,
        edited("pagerduty_incident_triggered", {"event.data.title": DELETE}),
        {},
        "pagerduty: missing event.data.title",
        id="pagerduty-missing-title",
    ),
    pytest.param(
        parse_pagerduty,
        edited("pagerduty_incident_triggered", {"event.id": DELETE}),
        {},
        "pagerduty: missing event.id",
        id="pagerduty-missing-event-id",
    ),
]


@pytest.mark.parametrize(("parser", "body", "headers", "message"), BAD_REQUESTS)
def test_bad_payloads_are_refused_naming_the_field(
    parser: WebhookParser, body: Body, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        parser(body, headers, now=NOW)
    assert message in caught.value.message


def test_undecodable_bodies_are_their_own_kind_of_bad_request() -> None:
    with pytest.raises(UndecodableBody):
        parse_pagerduty(b"not json", {}, now=NOW)


# --- Versions, tags and ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "sha", "expected"),
    [
        pytest.param("v1.2.3", None, "v1.2.3", id="v-semver"),
        pytest.param("1.4", None, "1.4", id="bare-version"),
        pytest.param("2.0.0-rc.1", None, "2.0.0-rc.1", id="pre-release"),
        pytest.param("v3.1.0+build.7", None, "v3.1.0+build.7", id="build-metadata"),
        pytest.param("refs/tags/release-7", None, "release-7", id="refs-tags-any-name"),
        pytest.param("main", None, None, id="branch"),
        pytest.param("release/1.2", None, None, id="release-branch"),
        pytest.param("feature-v2", None, None, id="branch-with-version-inside"),
        pytest.param("refs/heads/v1.2", None, None, id="refs-heads-is-a-branch-even-version-like"),
        pytest.param("1234567", "1234567abcdef0123456789abcdef0123456789a", None, id="numeric-short-sha"),
        pytest.param(PAYMENTS_SHA, PAYMENTS_SHA, None, id="full-sha"),
        pytest.param(None, None, None, id="no-ref"),
    ],
)
def test_which_refs_are_tags(ref: str | None, sha: str | None, expected: str | None) -> None:
    assert tag_name(ref, sha=sha) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param("ghcr.io/acme/checkout:1.4.2", ("checkout", "1.4.2"), id="registry-path-tag"),
        pytest.param("localhost:5000/cart:2.0", ("cart", "2.0"), id="registry-port"),
        pytest.param("nginx", ("nginx", None), id="no-tag"),
        pytest.param("ghcr.io/acme/checkout:1.4.2@sha256:" + "a" * 64, ("checkout", "1.4.2"), id="tag-and-digest"),
        pytest.param("ghcr.io/acme/checkout@sha256:" + "a" * 64, ("checkout", None), id="digest-only"),
    ],
)
def test_image_tags(image: str, expected: tuple[str, str | None]) -> None:
    assert image_tag(image) == expected


def test_deploy_ids_stay_path_safe() -> None:
    body = edited(
        "flux_kustomization_succeeded",
        {"involvedObject.name": "shop/cart web", "metadata": {"revision": "release/1.2@sha1:" + FLUX_SHA}},
    )
    (record,) = parse_flux(body, {}, now=NOW).deploys
    assert record.deploy_id == f"flux-shop-cart-web-release-1.2@sha1:{FLUX_SHA}-{int(FLUX_CART_AT.timestamp())}"
    assert record.version == FLUX_SHA[:7]


# --- Signatures ---------------------------------------------------------------------------------------------


def test_github_signature() -> None:
    body = raw("github_deployment")
    verify_github(body, f"sha256={sign(body)}", SECRET)
    verify_github(body, f"sha256={sign(body).upper()}", SECRET)
    for header, reason in [
        (None, "missing the X-Hub-Signature-256 header"),
        ("", "missing the X-Hub-Signature-256 header"),
        (f"sha256={sign(body, 'other-secret')}", "does not match"),
        (f"sha256={sign(body + b' ')}", "does not match"),
        (f"sha1={sign(body)}", "does not match"),
        (sign(body), "does not match"),
        ("sha256=é\x00", "does not match"),
    ]:
        with pytest.raises(Unauthorized, match=reason):
            verify_github(body, header, SECRET)


def test_gitlab_token() -> None:
    verify_gitlab("gl-token", "gl-token")
    for header, reason in [
        (None, "missing the X-Gitlab-Token header"),
        ("gl-tokeN", "does not match"),
        ("gl-token-é", "does not match"),
    ]:
        with pytest.raises(Unauthorized, match=reason):
            verify_gitlab(header, "gl-token")


def test_flux_signature() -> None:
    body = raw("flux_helmrelease_failed")
    verify_flux(body, f"sha256={sign(body)}", SECRET)
    for header, reason in [
        (None, "missing the X-Signature header"),
        (f"sha256={sign(b'{}')}", "does not match"),
        (f"sha512={sign(body)}", "does not match"),
    ]:
        with pytest.raises(Unauthorized, match=reason):
            verify_flux(body, header, SECRET)


def test_pagerduty_signature_any_v1_matches() -> None:
    body = raw("pagerduty_incident_triggered")
    good, old = sign(body), sign(body, "rotated-out-secret")
    verify_pagerduty(body, f"v1={good}", SECRET)
    verify_pagerduty(body, f"v1={old},v1={good}", SECRET)
    verify_pagerduty(body, f"v1={good}, v1={old}", SECRET)
    for header, reason in [
        (None, "missing the X-PagerDuty-Signature header"),
        (f"v1={old}", "no v1 signature"),
        (f"v2={good}", "no v1 signature"),
        (good, "no v1 signature"),
    ]:
        with pytest.raises(Unauthorized, match=reason):
            verify_pagerduty(body, header, SECRET)


def test_a_check_without_a_secret_fails_closed() -> None:
    body = raw("github_deployment")
    with pytest.raises(Unauthorized, match="no webhook secret is configured"):
        verify_github(body, f"sha256={hmac.new(b'', body, hashlib.sha256).hexdigest()}", "")
    with pytest.raises(Unauthorized, match="no webhook secret is configured"):
        verify_gitlab("", "")


def test_verify_webhook_reads_each_platforms_header() -> None:
    body = raw("pagerduty_incident_triggered")
    verify_webhook("github", body, {"x-hub-signature-256": f"sha256={sign(body)}"}, SECRET)
    verify_webhook("gitlab", body, {"x-gitlab-token": SECRET}, SECRET)
    verify_webhook("flux", body, {"x-signature": f"sha256={sign(body)}"}, SECRET)
    verify_webhook("pagerduty", body, {"x-pagerduty-signature": f"v1={sign(body)}"}, SECRET)
    with pytest.raises(Unauthorized):
        verify_webhook("pagerduty", body, {"x-hub-signature-256": f"sha256={sign(body)}"}, SECRET)
    with pytest.raises(ValueError, match="bearer token"):
        verify_webhook("alertmanager", body, {}, SECRET)


# --- Options, registry, fixtures ----------------------------------------------------------------------------


def test_settings_strings_parse() -> None:
    assert parse_service_map(" shop-checkout=checkout, Checkout API = checkout ,") == {
        "shop-checkout": "checkout",
        "Checkout API": "checkout",
    }
    assert parse_service_map("") == {}
    with pytest.raises(ValueError, match="shop-checkout=checkout"):
        parse_service_map("shop-checkout")
    assert parse_service_labels("team, app") == ("team", "app")
    assert parse_service_labels(" ") == DEFAULT_SERVICE_LABELS == ("service", "service_name", "app", "job")


def test_every_webhook_route_has_a_parser() -> None:
    assert set(DEPLOY_WEBHOOKS) == {"argocd", "github", "gitlab", "flux"}
    assert set(ALERT_WEBHOOKS) == {"alertmanager", "grafana", "pagerduty"}
    assert set(WEBHOOKS) == set(DEPLOY_WEBHOOKS) | set(ALERT_WEBHOOKS)


def test_every_fixture_names_its_source() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for path in FIXTURES.glob("*.json"):
        assert f"`{path.name}`" in readme, f"{path.name} is not in tests/fixtures/webhooks/README.md"
