"""GitLab Deployment Hook webhooks to deploy events."""

# Mapping: deploy_id gitlab-<deployment_id>; service = a `service` key or CI variable the hook carries, else
# project.name; version = the ref when `tag` is true (or, without that flag, when the ref reads like a tag),
# else short_sha; revision = the full sha at the end of commit_url; status_changed_at is started_at for
# `running`, finished_at for success/failed/canceled; url = deployable_url (the job that deployed).

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import Delivery, DeployEvent, DeployStatus
from correlator.events.times import parse_instant
from correlator.events.versions import is_hex_sha, require_deploy, tag_name

SOURCE = "gitlab deployment"
_STATUS: Mapping[str, DeployStatus] = {
    "running": "started",
    "success": "succeeded",
    "failed": "failed",
    "canceled": "failed",
}
# GitLab writes status_changed_at as "2021-04-28 21:50:00 +0200", not RFC 3339.
_GITLAB_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?)\s*(Z|UTC|[+-]\d\d:?\d\d)$")


def parse_gitlab(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """A GitLab delivery: a Deployment Hook becomes a deploy; other hooks, nothing."""
    delivery_id = headers.get("x-gitlab-event-uuid") or headers.get("idempotency-key") or None
    hook = headers.get("x-gitlab-event")
    if hook is not None and hook.strip() != "Deployment Hook":
        return Delivery(delivery_id)
    root = Fields(load_object(body, source=SOURCE), source=SOURCE)
    if root.optional_text("object_kind") != "deployment":
        return Delivery(delivery_id)

    project = root.optional_child("project")
    service_name = _service_variable(root) or (project.optional_text("name") if project else None)
    service, version = require_deploy(service_name, _version(root), source=SOURCE)
    state = root.text("status")
    status = _STATUS.get(state)
    changed_at = _status_changed_at(root, now=now)
    attributes = {
        "gitlab.project": project.optional_text("path_with_namespace") if project else None,
        "gitlab.ref": root.optional_text("ref"),
        "gitlab.environment_tier": root.optional_text("environment_tier"),
    }
    deployment_id = root.optional_ident("deployment_id")
    record = DeployEvent(
        service=options.service_name(service),
        version=version,
        source="gitlab",
        # Hooks from GitLab before 14.x carry no deployment_id: the service then derives a deterministic id.
        deploy_id=f"gitlab-{deployment_id}" if deployment_id else None,
        environment=root.text("environment"),
        revision=_commit_sha(root),
        status=status,
        started_at=changed_at if status == "started" else None,
        finished_at=changed_at if status in ("succeeded", "failed") else None,
        url=root.optional_text("deployable_url"),
        attributes={key: value for key, value in attributes.items() if value},
    )
    return Delivery(delivery_id, deploys=(record,))


def _service_variable(root: Fields) -> str | None:
    """A `service` the hook carries: a top-level key, or a `service` CI variable in a `variables` list."""
    direct = root.optional_text("service")
    if direct:
        return direct
    variables = root.data.get("variables")
    if isinstance(variables, list):
        for variable in variables:
            if isinstance(variable, Mapping) and str(variable.get("key", "")).lower() == "service":
                value = variable.get("value")
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return None


def _version(root: Fields) -> str | None:
    """The ref when it is a tag (the `tag` flag when sent, else the shared tag rule), else the short sha."""
    ref = root.optional_text("ref")
    tag = root.optional_bool("tag")
    if ref and tag:
        return ref.removeprefix("refs/tags/")
    if ref and tag is None and (name := tag_name(ref)):
        return name
    return root.optional_text("short_sha")


def _commit_sha(root: Fields) -> str | None:
    """The full sha, read from commit_url's last segment; the short sha when that is absent."""
    commit_url = root.optional_text("commit_url")
    if commit_url:
        last = commit_url.rstrip("/").rsplit("/", 1)[-1]
        if is_hex_sha(last):
            return last
    return root.optional_text("short_sha")


def _status_changed_at(root: Fields, *, now: datetime) -> datetime | None:
    """status_changed_at in GitLab's own format or RFC 3339."""
    text = root.optional_text("status_changed_at")
    if text is None:
        return None
    match = _GITLAB_TIME.match(text)
    if match:
        day, clock, offset = match.groups()
        if offset == "UTC":
            offset = "Z"
        elif offset != "Z" and ":" not in offset:
            offset = f"{offset[:3]}:{offset[3:]}"
        text = f"{day}T{clock}{offset}"
    return parse_instant(text, field=f"{SOURCE}: status_changed_at", now=now)
