"""GitHub `deployment` and `deployment_status` webhooks to deploy events."""

# Mapping (API.md, Deploys): deploy_id github-<deployment.id>; service = deployment.payload.service, else the
# repository name; version = deployment.payload.version, else the ref when it names a tag (versions.tag_name),
# else the 7-character sha; revision = deployment.sha; environment = deployment.environment; started_at =
# deployment.created_at; finished_at = the status's updated_at once succeeded or failed; url = the status's
# target_url, environment_url or log_url. A `deployment` event records the deploy without a status.

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from correlator.events.fields import Body, Fields, has_lone_surrogate, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import Delivery, DeployEvent, DeployStatus
from correlator.events.versions import require_deploy, short_sha, tag_name

# deployment_status.state -> our status; `inactive` (GitHub retiring an older deployment) is left out on purpose.
_STATUS: Mapping[str, DeployStatus] = {
    "pending": "started",
    "queued": "started",
    "in_progress": "started",
    "success": "succeeded",
    "failure": "failed",
    "error": "failed",
}
_TERMINAL: frozenset[DeployStatus] = frozenset({"succeeded", "failed"})


def parse_github(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """A GitHub delivery: `deployment` and `deployment_status` become a deploy; `ping` and the rest, nothing."""
    event = headers.get("x-github-event", "").strip()
    delivery_id = headers.get("x-github-delivery") or None
    source = f"github {event or 'delivery'}"
    # Every GitHub delivery is a JSON object: one that is not is refused (400) whatever its event, not ignored.
    document = load_object(body, source=source)
    if event not in ("deployment", "deployment_status"):
        return Delivery(delivery_id)
    root = Fields(document, source=source)
    deployment = root.child("deployment")
    deployment_status = root.child("deployment_status") if event == "deployment_status" else None
    status: DeployStatus | None = None
    if deployment_status is not None:
        state = deployment_status.text("state")
        if state == "inactive":
            # GitHub marks the previous deployment of an environment inactive when a new one succeeds: no news.
            return Delivery(delivery_id)
        status = _STATUS.get(state)

    payload = _deployment_payload(deployment)
    sha = deployment.optional_text("sha")
    ref = deployment.optional_text("ref")
    repository = root.optional_child("repository")
    service_name = payload.optional_text("service") or (repository.optional_text("name") if repository else None)
    version = payload.optional_text("version") or tag_name(ref, sha=sha) or (short_sha(sha) if sha else None)
    service, version = require_deploy(service_name, version, source=source)

    finished_at = None
    url = None
    if deployment_status is not None:
        if status in _TERMINAL:
            updated_at = deployment_status.optional_instant("updated_at", now=now)
            finished_at = updated_at or deployment_status.optional_instant("created_at", now=now)
        url = (
            deployment_status.optional_text("target_url")
            or deployment_status.optional_text("environment_url")
            or deployment_status.optional_text("log_url")
        )
    attributes = {
        "github.repository": repository.optional_text("full_name") if repository else None,
        "github.ref": ref,
        "github.task": deployment.optional_text("task"),
    }
    record = DeployEvent(
        service=options.service_name(service),
        version=version,
        source="github",
        deploy_id=f"github-{deployment.ident('id')}",
        environment=deployment.text("environment"),
        revision=sha,
        status=status,
        started_at=deployment.optional_instant("created_at", now=now),
        finished_at=finished_at,
        url=url,
        attributes={key: value for key, value in attributes.items() if value},
    )
    return Delivery(delivery_id, deploys=(record,))


def _deployment_payload(deployment: Fields) -> Fields:
    """`deployment.payload`: an object, or a JSON object sent as a string (the API takes both); else empty."""
    value: Any = deployment.data.get("payload")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            value = None
        if has_lone_surrogate(value):
            value = None
    if not isinstance(value, Mapping):
        value = {}
    return Fields(value, source=deployment.source, path=deployment.where("payload"))
