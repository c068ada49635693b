"""Webhook routes: each platform's native payload, authenticated by a write token or the platform's own proof."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from correlator.api.deps import api_errors, app_state
from correlator.api.state import AppState
from correlator.errors import CorrelatorError, PayloadTooLarge, UnsupportedMediaType
from correlator.events.options import WebhookOptions
from correlator.events.signatures import PROOF_HEADERS, verify_webhook
from correlator.events.webhooks import WEBHOOKS
from correlator.service.clock import utc_now

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

WHAT = {
    "argocd": "Argo CD notifications (the template in deploy/argocd/)",
    "github": "GitHub deployment and deployment_status events (X-Hub-Signature-256)",
    "gitlab": "GitLab Deployment Hook (X-Gitlab-Token)",
    "flux": "Flux notification-controller generic or generic-hmac events (X-Signature)",
    "alertmanager": "Prometheus Alertmanager webhook, version 4",
    "grafana": "Grafana unified alerting webhook",
    "pagerduty": "PagerDuty V3 webhook (X-PagerDuty-Signature)",
}


class WebhookOutcome(BaseModel):
    """What a delivery did: nothing new (`duplicate`, `ignored`), or the deploys and incidents it touched."""

    duplicate: bool
    ignored: bool
    deploy_ids: list[str]
    incident_ids: list[str]


def _secret(state: AppState, source: str) -> str:
    settings = state.settings
    secrets = {
        "github": settings.webhook_github_secret,
        "gitlab": settings.webhook_gitlab_token,
        "flux": settings.webhook_flux_secret,
        "pagerduty": settings.webhook_pagerduty_secret,
    }
    return secrets.get(source, "")


def authorize(state: AppState, source: str, body: bytes, headers: Mapping[str, str]) -> None:
    """A write token when one is sent (or when tokens are on and no proof is configured), else the proof."""
    authorization = headers.get("authorization")
    secret = _secret(state, source)
    if authorization and state.auth.enabled:
        state.auth.check(authorization, "write")
    elif secret:
        verify_webhook(source, body, headers, secret)
    else:
        state.auth.check(authorization, "write")


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"webhooks take application/json, got {content_type!r}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; webhooks take at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes, the most a webhook may send")
        chunks.append(chunk)
    return b"".join(chunks)


def _options(state: AppState) -> WebhookOptions:
    settings = state.settings
    return WebhookOptions(service_map=settings.service_names(), service_labels=settings.alert_labels())


def _route(source: str) -> Callable[[Request], Any]:
    async def receive(request: Request) -> JSONResponse:
        state = app_state(request)
        try:
            body = await _read_body(request, state.settings.max_webhook_bytes)
            headers = {name.lower(): value for name, value in request.headers.items()}
            # A proof needs the body (read within its size bound); what the body is, only a proven caller learns.
            authorize(state, source, body, headers)
            _require_json(request)
            now: datetime = utc_now()
            delivery = WEBHOOKS[source](body, headers, now=now, options=_options(state))
        except CorrelatorError:
            state.metrics.webhooks.labels(source, "refused").inc()
            raise
        outcome = await anyio.to_thread.run_sync(state.webhooks.receive, source, delivery)
        state.metrics.webhooks.labels(source, outcome.kind).inc()
        out = WebhookOutcome(
            duplicate=outcome.duplicate,
            ignored=outcome.ignored,
            deploy_ids=list(outcome.deploy_ids),
            incident_ids=list(outcome.incident_ids),
        )
        return JSONResponse(out.model_dump(), status_code=201 if outcome.created else 200)

    receive.__name__ = f"webhook_{source}"
    return receive


for _source in WEBHOOKS:
    proof = f" or its {PROOF_HEADERS[_source]} header when a secret is set" if _source in PROOF_HEADERS else ""
    router.add_api_route(
        f"/{_source}",
        _route(_source),
        methods=["POST"],
        summary=f"Receive a {WHAT[_source]}",
        description=f"Authenticated by a write token{proof}. 201 when it created a record, else 200.",
        response_model=WebhookOutcome,
        status_code=201,
        responses={
            200: {"model": WebhookOutcome, "description": "nothing created: a duplicate, ignored or an update"},
            **api_errors({413: "the body is over the webhook size limit", 415: "the body is not JSON"}),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
