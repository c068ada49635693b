"""Argo CD notifications (the `correlator-deploy` template of deploy/argocd/notifications-cm.yaml) to deploy events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import Delivery, DeployEvent, DeployStatus
from correlator.events.versions import id_part, image_tag, require_deploy, version_from_revision

SOURCE = "argocd"


def parse_argocd(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """An Argo CD notification rendered by our template: one deploy of one Application."""
    root = Fields(load_object(body, source=SOURCE), source=SOURCE)
    app = root.text("app")
    service_name = root.optional_text("service") or app
    revision = root.optional_text("revision")
    images = root.texts("images")
    names = {app, service_name, options.service_name(service_name)}
    service, version = require_deploy(service_name, _version(images, revision, names), source=SOURCE)
    phase = root.optional_text("phase")
    health = root.optional_text("health")
    status = _status(phase, health)
    started_at = root.optional_instant("started_at", now=now)
    attributes = {
        "argocd.app": app,
        "argocd.phase": phase,
        "argocd.health": health,
        "argocd.namespace": root.optional_text("destination_namespace"),
        "argocd.cluster": root.optional_text("destination_server") or root.optional_text("destination_name"),
        "argocd.repo_url": root.optional_text("repo_url"),
        "argocd.images": ",".join(images),
    }
    record = DeployEvent(
        service=options.service_name(service),
        version=version,
        source="argocd",
        # Without a revision or an operation start the service derives a deterministic id instead.
        deploy_id=(
            f"argocd-{id_part(app)}-{id_part(revision)}-{int(started_at.timestamp())}"
            if revision and started_at
            else None
        ),
        environment=root.optional_text("environment"),
        revision=revision,
        status=status,
        started_at=started_at,
        finished_at=root.optional_instant("finished_at", now=now) if status in ("succeeded", "failed") else None,
        url=root.optional_text("url"),
        attributes={key: value for key, value in attributes.items() if value},
    )
    return Delivery(None, deploys=(record,))


def _status(phase: str | None, health: str | None) -> DeployStatus | None:
    """The status the app's state says; the template sends the same state the standard triggers test.

    on-sync-failed (phase Error/Failed) and on-health-degraded (health Degraded) -> failed; on-deployed (phase
    Succeeded, Healthy) -> succeeded; on-sync-running (Running), or a sync done while the rollout still
    progresses -> started.
    """
    if phase in ("Error", "Failed") or health == "Degraded":
        return "failed"
    if phase == "Running":
        return "started"
    if phase == "Succeeded":
        return "succeeded" if health == "Healthy" else "started"
    return None


def _version(images: list[str], revision: str | None, names: set[str]) -> str | None:
    """The image tag when the app runs one image (or one image named like the app or service), else the revision."""
    tagged = [image_tag(image) for image in images]
    if len(tagged) == 1 and tagged[0][1]:
        return tagged[0][1]
    named = {tag for name, tag in tagged if tag and name in names}
    if len(named) == 1:
        return named.pop()
    return version_from_revision(revision) if revision else None
