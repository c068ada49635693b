"""Flux notification-controller events (generic and generic-hmac providers) to deploy events."""

# Mapping: only Kustomization and HelmRelease events are deploys. service = metadata `service` (an
# event.toolkit.fluxcd.io/service annotation or Alert eventMetadata), else involvedObject.name; version from
# the revision (flux_version); environment = metadata `environment` or `env` (same ways in), else left to the
# service's default, not the namespace (a namespace names a team or an app more often than an environment);
# status: severity error -> failed, ReconciliationSucceeded/Install-/Upgrade-/RollbackSucceeded -> succeeded,
# Progressing -> started, any other info event -> not a deploy; deploy_id flux-<name>-<revision>-<event time>.

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import Delivery, DeployEvent, DeployStatus
from correlator.events.versions import id_part, is_hex_sha, require_deploy, short_sha, tag_name, version_from_revision

SOURCE = "flux"
# Objects whose reconciliation changes what runs; sources (GitRepository, OCIRepository, HelmChart...) only fetch.
DEPLOYING_KINDS = frozenset({"Kustomization", "HelmRelease"})
# Info events that report a rollout; other info reasons (DependencyNotReady, ArtifactUpToDate...) are not deploys.
_SUCCEEDED_REASONS = frozenset({"ReconciliationSucceeded", "InstallSucceeded", "UpgradeSucceeded", "RollbackSucceeded"})
_STARTED_REASONS = frozenset({"Progressing", "ProgressingWithRetry"})


def parse_flux(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """A Flux event: a Kustomization or HelmRelease rollout (started, succeeded, failed) becomes a deploy."""
    root = Fields(load_object(body, source=SOURCE), source=SOURCE)
    involved = root.child("involvedObject")
    kind = involved.text("kind")
    severity = root.text("severity").lower()
    reason = root.optional_text("reason")
    status = _status(severity, reason)
    if kind not in DEPLOYING_KINDS or status is None:
        # Flux delivers no id of its own; the deploy id below already makes a retried event land on one record.
        return Delivery(None)

    name = involved.text("name")
    metadata = root.string_map("metadata")
    revision = _revision(metadata)
    service, version = require_deploy(
        metadata.get("service") or name, flux_version(revision) if revision else None, source=SOURCE
    )
    at = root.instant("timestamp", now=now)
    attributes = {
        "flux.kind": kind,
        "flux.namespace": involved.optional_text("namespace"),
        "flux.reason": reason,
        "flux.revision": revision,
        "flux.controller": root.optional_text("reportingController"),
    }
    record = DeployEvent(
        service=options.service_name(service),
        version=version,
        source="flux",
        deploy_id=f"flux-{id_part(name)}-{id_part(revision or '')}-{int(at.timestamp())}",
        environment=metadata.get("environment") or metadata.get("env") or None,
        revision=flux_commit(revision) if revision else None,
        status=status,
        # Each Flux event is its own deploy (its time is in the id), so its time is where it starts too.
        started_at=at,
        finished_at=at if status != "started" else None,
        attributes={key: value for key, value in attributes.items() if value},
    )
    return Delivery(None, deploys=(record,))


def _status(severity: str, reason: str | None) -> DeployStatus | None:
    if severity == "error":
        return "failed"
    if reason in _SUCCEEDED_REASONS:
        return "succeeded"
    if reason in _STARTED_REASONS:
        return "started"
    return None


def _revision(metadata: Mapping[str, str]) -> str | None:
    """`revision`, else the controller's `<group>/revision` (kustomize.toolkit.fluxcd.io/revision...)."""
    if metadata.get("revision"):
        return metadata["revision"].strip()
    for key, value in metadata.items():
        if key.endswith("/revision") and value.strip():
            return value.strip()
    return None


def _split(revision: str) -> tuple[str, str | None]:
    """A Flux revision as (ref, hash): `v1.2.3@sha1:abc`, `main@sha1:abc`, legacy `main/abc`, `sha256:abc`, `1.2.3`."""
    ref, at, digest = revision.partition("@")
    if at:
        return ref, digest.partition(":")[2] or digest
    algorithm, colon, digest = revision.partition(":")
    if colon and algorithm in ("sha1", "sha256", "sha384", "sha512"):
        return "", digest
    branch, slash, sha = revision.rpartition("/")
    if slash and is_hex_sha(sha):
        return branch, sha
    return revision, None


def flux_version(revision: str) -> str:
    """The version a Flux revision names: its ref when that is a tag, else the short hash, else the revision."""
    ref, digest = _split(revision)
    if digest is None:
        return version_from_revision(ref)
    return tag_name(ref) or short_sha(digest)


def flux_commit(revision: str) -> str:
    """The commit of a git revision (`main@sha1:<sha>`, legacy `main/<sha>`); other revisions as they are."""
    _, at, digest = revision.partition("@")
    target = digest if at else revision
    if target.startswith("sha1:"):
        return target.removeprefix("sha1:")
    _, slash, sha = revision.rpartition("/")
    if not at and slash and is_hex_sha(sha):
        return sha
    return revision
