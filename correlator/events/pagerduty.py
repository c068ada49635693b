"""PagerDuty V3 webhook incident events to alert events."""

# Mapping: fingerprint = the incident id (so acknowledge and resolve find the incident by it); starts_at =
# the incident's created_at for every event, so that a resolution delivered before its trigger still opens the
# incident when PagerDuty created it (else event.occurred_at); ends_at = event.occurred_at of
# incident.acknowledged and incident.resolved, when the transition happened; severity = urgency, else the
# priority's name, lower case; service = the PagerDuty service's name through the service map; other event
# types carry nothing we record.

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import AlertAction, AlertEvent, Delivery

SOURCE = "pagerduty"
_ACTIONS: Mapping[str, AlertAction] = {
    "incident.triggered": "firing",
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
}


def parse_pagerduty(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """A PagerDuty V3 delivery: incident triggered, acknowledged or resolved; other event types, nothing."""
    root = Fields(load_object(body, source=SOURCE), source=SOURCE)
    event = root.child("event")
    delivery_id = event.ident("id")
    action = _ACTIONS.get(event.text("event_type"))
    if action is None:
        return Delivery(delivery_id)
    incident = event.child("data")
    occurred_at = event.instant("occurred_at", now=now)
    # The incident opened when PagerDuty created it, whichever of its events arrives first; later transitions
    # happen when they occurred.
    if action == "firing":
        starts_at = incident.instant("created_at", now=now)
    else:
        starts_at = incident.optional_instant("created_at", now=now) or occurred_at
    service = incident.optional_child("service")
    service_name = service.optional_text("summary") if service else None
    priority = incident.optional_child("priority")
    priority_name = priority.optional_text("summary") if priority else None
    urgency = incident.optional_text("urgency")
    severity = urgency or priority_name
    labels = {
        "pagerduty.service": service_name,
        "pagerduty.urgency": urgency,
        "pagerduty.priority": priority_name,
        "pagerduty.incident_number": incident.optional_ident("number"),
        "pagerduty.incident_key": incident.optional_text("incident_key"),
    }
    record = AlertEvent(
        source="pagerduty",
        fingerprint=incident.ident("id"),
        action=action,
        starts_at=starts_at,
        title=incident.text("title"),
        ends_at=occurred_at if action != "firing" else None,
        service=options.service_name(service_name) if service_name else None,
        severity=severity.lower() if severity else None,
        labels={key: value for key, value in labels.items() if value},
        url=incident.optional_text("html_url"),
    )
    return Delivery(delivery_id, alerts=(record,))
