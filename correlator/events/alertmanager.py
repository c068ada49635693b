"""Alertmanager webhook (version 4) notifications to alert events; Grafana's shares the mapping."""

# Mapping (API.md, Incidents): one event per alert; action = the alert's status; service = the first present
# of the configured labels (commonLabels fill in what an alert lacks); severity = labels.severity in lower
# case; title = alertname + ": " + the summary annotation; summary = the description annotation, else the
# summary; ends_at = endsAt of a resolved alert (the zero time is None); fingerprint = the sender's, else one
# computed from the labels.

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from correlator.errors import BadRequest
from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import AlertAction, AlertEvent, AlertSource, Delivery

_ACTIONS: Mapping[str, AlertAction] = {"firing": "firing", "resolved": "resolved"}


def parse_alertmanager(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """An Alertmanager notification: one alert event per alert of the group."""
    root = Fields(load_object(body, source="alertmanager"), source="alertmanager")
    version = root.optional_ident("version")
    if version is not None and version != "4":
        raise BadRequest(f"alertmanager: expected webhook payload version '4', got {version!r}")
    return Delivery(None, alerts=group_alerts(root, "alertmanager", ("generatorURL",), now=now, options=options))


def group_alerts(
    root: Fields, source: AlertSource, url_keys: Sequence[str], *, now: datetime, options: WebhookOptions
) -> tuple[AlertEvent, ...]:
    """The alerts of an Alertmanager-shaped group; commonLabels only fill in labels an alert lacks."""
    common = root.string_map("commonLabels")
    return tuple(_alert(alert, source, common, url_keys, now=now, options=options) for alert in root.children("alerts"))


def _alert(
    alert: Fields,
    source: AlertSource,
    common: Mapping[str, str],
    url_keys: Sequence[str],
    *,
    now: datetime,
    options: WebhookOptions,
) -> AlertEvent:
    status = alert.text("status")
    action = _ACTIONS.get(status)
    if action is None:
        raise BadRequest(f"{source}: {alert.where('status')}: expected 'firing' or 'resolved', got {status!r}")
    labels = {**common, **alert.string_map("labels")}
    annotations = alert.string_map("annotations")
    service = next((labels[name] for name in options.service_labels if labels.get(name)), None)
    severity = labels.get("severity")
    summary = annotations.get("summary")
    fingerprint = alert.optional_text("fingerprint") or labels_fingerprint(labels)
    title = ": ".join(part for part in (labels.get("alertname"), summary) if part) or f"alert {fingerprint}"
    return AlertEvent(
        source=source,
        fingerprint=fingerprint,
        action=action,
        starts_at=alert.instant("startsAt", now=now),
        title=title,
        # A firing alert's endsAt is only Alertmanager's guess of when to time it out: not an end.
        ends_at=alert.optional_instant("endsAt", now=now) if action == "resolved" else None,
        service=options.service_name(service) if service else None,
        severity=severity.lower() if severity else None,
        labels=labels,
        summary=annotations.get("description") or summary,
        url=next((url for key in url_keys if (url := alert.optional_text(key))), None),
    )


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable fingerprint from an alert's labels, for senders that leave `fingerprint` out."""
    canonical = "\x00".join(f"{name}\x01{value}" for name, value in sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
