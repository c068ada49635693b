"""Incidents: opened and resolved by alerts (replays and reordering safe), or by hand; with a timeline."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from correlator.errors import BadRequest, Conflict, NotFound
from correlator.events.records import AlertEvent
from correlator.model import Deploy, Incident, TimelineEntry
from correlator.service.clock import Now, VersionStamps, utc_now
from correlator.store import Store
from correlator.store import records as store_records
from correlator.store.records import DeployFilter, IncidentFilter

Transition = Literal["acknowledge", "mitigate", "resolve"]
UNKNOWN_SERVICE = "unknown"
# Which states each transition may leave from, and the state it reaches.
_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "mitigate": (frozenset({"open", "acknowledged"}), "mitigated"),
    "resolve": (frozenset({"open", "acknowledged", "mitigated"}), "resolved"),
}
ACTIVE_STATES = ("open", "acknowledged", "mitigated")
STATES = (*ACTIVE_STATES, "resolved")


@dataclass(frozen=True)
class IncidentView:
    """An incident with its timeline (deploys of its service while it was open included)."""

    incident: Incident
    timeline: list[TimelineEntry]

    @property
    def time_to_resolve_s(self) -> float | None:
        resolved_at = self.incident.resolved_at
        return (resolved_at - self.incident.opened_at).total_seconds() if resolved_at else None


@dataclass(frozen=True)
class AlertOutcome:
    """What an alert did: the incident it landed on, and whether it created that incident."""

    incident_id: str
    created: bool


def alert_incident_id(alert: AlertEvent) -> str:
    """Deterministic from (source, fingerprint, startsAt); PagerDuty's fingerprint is its incident id alone."""
    starts = "" if alert.source == "pagerduty" else alert.starts_at.isoformat()
    return "inc-" + hashlib.sha256("\x1f".join((alert.source, alert.fingerprint, starts)).encode()).hexdigest()[:16]


def _set_time(incident: Incident, transition: str, at: datetime) -> Incident:
    state = _TRANSITIONS[transition][1]
    if state == "acknowledged":
        return dataclasses.replace(incident, status=state, acknowledged_at=at)
    if state == "mitigated":
        return dataclasses.replace(incident, status=state, mitigated_at=at)
    return dataclasses.replace(incident, status=state, resolved_at=at)


def _deploy_entry(incident_id: str, deploy: Deploy) -> TimelineEntry:
    previous = f" (from {deploy.previous_version})" if deploy.previous_version else ""
    rollback = " — a rollback" if deploy.is_rollback else ""
    return TimelineEntry(
        incident_id,
        f"deploy:{deploy.deploy_id}",
        deploy.started_at,
        "deploy",
        f"{deploy.service} {deploy.version}{previous} deployed to {deploy.environment}{rollback} [{deploy.deploy_id}]",
    )


class Incidents:
    """The incidents use case; one lock serialises read-modify-write of incident rows."""

    def __init__(self, store: Store, now: Now = utc_now) -> None:
        self._store = store
        self._now = now
        self._stamps = VersionStamps(now)
        self._lock = threading.RLock()

    def apply_alert(self, alert: AlertEvent) -> AlertOutcome:
        """Open, acknowledge or resolve the incident an alert stands for; replays change nothing."""
        with self._lock:
            incident_id = alert_incident_id(alert)
            incident = store_records.get_incident(self._store, incident_id)
            created = incident is None
            entries: list[TimelineEntry] = []
            if incident is None:
                incident = Incident(
                    incident_id=incident_id,
                    title=alert.title,
                    service=alert.service or UNKNOWN_SERVICE,
                    status="open",
                    source=alert.source,
                    opened_at=alert.starts_at,
                    severity=alert.severity,
                    labels=dict(alert.labels),
                    fingerprint=alert.fingerprint,
                    alert_starts_at=alert.starts_at,
                    summary=alert.summary,
                    url=alert.url,
                )
                entries.append(self._entry(incident_id, "state:open", alert.starts_at, "state_change", "opened"))
            updated = incident
            fingerprint_key = f"{alert.fingerprint}@{alert.starts_at.isoformat()}"
            if alert.action == "firing":
                entries.append(
                    self._entry(incident_id, f"firing:{fingerprint_key}", alert.starts_at, "alert_firing", alert.title)
                )
            elif alert.action == "acknowledged":
                # An acknowledgement (PagerDuty's) carries when it happened in ends_at, else starts_at.
                at = alert.ends_at or alert.starts_at
                if updated.status == "open":
                    updated = _set_time(updated, "acknowledge", max(at, updated.opened_at))
                    entries.append(self._entry(incident_id, "state:acknowledged", at, "state_change", "acknowledged"))
            else:
                at = max(alert.ends_at or self._now(), updated.opened_at)
                entries.append(
                    self._entry(incident_id, f"resolved:{fingerprint_key}", at, "alert_resolved", alert.title)
                )
                # The first resolution wins; a later one only joins the timeline.
                if updated.status != "resolved":
                    updated = _set_time(updated, "resolve", at)
                    entries.append(self._entry(incident_id, "state:resolved", at, "state_change", "resolved by alert"))
            if created or updated != incident:
                store_records.write_incident(self._store, updated, updated_at=self._stamps.next())
            store_records.append_timeline(self._store, entries, recorded_at=self._stamps.next())
            return AlertOutcome(incident_id, created)

    def declare(
        self, title: str, service: str, severity: str | None, opened_at: datetime | None, labels: dict[str, str]
    ) -> str:
        """Open an incident by hand; returns its id."""
        if not title.strip() or not service.strip():
            raise BadRequest("an incident needs a title and a service")
        opened = opened_at or self._now()
        incident = Incident(
            incident_id="inc-" + uuid.uuid4().hex[:16],
            title=title,
            service=service,
            status="open",
            source="manual",
            opened_at=opened,
            severity=severity.lower() if severity else None,
            labels=labels,
        )
        with self._lock:
            store_records.write_incident(self._store, incident, updated_at=self._stamps.next())
            entry = self._entry(incident.incident_id, "state:open", opened, "state_change", "declared by hand")
            store_records.append_timeline(self._store, [entry], recorded_at=self._stamps.next())
        return incident.incident_id

    def transition(self, incident_id: str, transition: Transition, at: datetime | None, note: str | None) -> Incident:
        """Acknowledge, mitigate or resolve by hand; 409 when the incident's state does not allow it."""
        with self._lock:
            incident = self._existing(incident_id)
            allowed_from, state = _TRANSITIONS[transition]
            if incident.status not in allowed_from:
                raise Conflict(f"cannot {transition} incident {incident_id}: it is {incident.status}")
            when = at or self._now()
            if when < incident.opened_at:
                raise BadRequest(
                    f"at ({when.isoformat()}) is before the incident opened ({incident.opened_at.isoformat()})"
                )
            updated = _set_time(incident, transition, when)
            store_records.write_incident(self._store, updated, updated_at=self._stamps.next())
            text = f"{state} by hand" + (f": {note}" if note else "")
            entry = self._entry(incident_id, f"state:{state}", when, "state_change", text)
            store_records.append_timeline(self._store, [entry], recorded_at=self._stamps.next())
            return updated

    def add_note(self, incident_id: str, text: str, at: datetime | None) -> None:
        """Add a note to the timeline."""
        if not text.strip():
            raise BadRequest("a note needs text")
        with self._lock:
            self._existing(incident_id)
            entry = self._entry(incident_id, f"note:{uuid.uuid4().hex}", at or self._now(), "note", text)
            store_records.append_timeline(self._store, [entry], recorded_at=self._stamps.next())

    def set_cause(self, incident_id: str, deploy_id: str) -> Incident:
        """Name the deploy that caused an incident, by hand (it outranks computed suspects)."""
        with self._lock:
            incident = self._existing(incident_id)
            deploy = store_records.get_deploy(self._store, deploy_id)
            if deploy is None:
                raise NotFound(f"no deploy with id {deploy_id!r}")
            updated = dataclasses.replace(incident, cause_deploy_id=deploy_id)
            store_records.write_incident(self._store, updated, updated_at=self._stamps.next())
            text = f"cause set by hand: {deploy.service} {deploy.version} [{deploy_id}]"
            entry = self._entry(incident_id, f"cause:{deploy_id}", self._now(), "cause_set", text)
            store_records.append_timeline(self._store, [entry], recorded_at=self._stamps.next())
            return updated

    def get(self, incident_id: str) -> IncidentView:
        """An incident with its timeline, deploys of its service while it was open included."""
        incident = self._existing(incident_id)
        entries = store_records.timeline(self._store, incident_id)
        until = incident.resolved_at or self._now()
        # A deploy seconds after resolution still belongs to the story; the window end is inclusive of it.
        wanted = DeployFilter(incident.opened_at, until + timedelta(seconds=1), service=incident.service, limit=1000)
        entries += [_deploy_entry(incident_id, d) for d in store_records.list_deploys(self._store, wanted)]
        return IncidentView(incident, sorted(entries, key=lambda e: (e.at, e.kind)))

    def list(self, wanted: IncidentFilter) -> list[Incident]:
        """Incidents matching a filter, newest opened first."""
        return store_records.list_incidents(self._store, wanted)

    def _existing(self, incident_id: str) -> Incident:
        incident = store_records.get_incident(self._store, incident_id)
        if incident is None:
            raise NotFound(f"no incident with id {incident_id!r}")
        return incident

    @staticmethod
    def _entry(incident_id: str, key: str, at: datetime, kind: str, text: str) -> TimelineEntry:
        return TimelineEntry(incident_id, key, at, kind, text)
