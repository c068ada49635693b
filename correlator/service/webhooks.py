"""Webhook deliveries: recognise redeliveries, then hand each record to the deploys or incidents use case."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from correlator.events.records import Delivery
from correlator.service.clock import Now, utc_now
from correlator.service.deploys import Deploys
from correlator.service.incidents import Incidents
from correlator.store import Store
from correlator.store import records as store_records


@dataclass(frozen=True)
class DeliveryOutcome:
    """What a delivery did: duplicate (already processed), or the deploys and incidents it created or touched."""

    duplicate: bool
    deploy_ids: tuple[str, ...] = ()
    incident_ids: tuple[str, ...] = ()
    created: bool = False

    @property
    def ignored(self) -> bool:
        return not self.duplicate and not self.deploy_ids and not self.incident_ids

    @property
    def kind(self) -> str:
        """One word for metrics: duplicate, ignored, created or updated."""
        if self.duplicate:
            return "duplicate"
        if self.ignored:
            return "ignored"
        return "created" if self.created else "updated"


class Webhooks:
    """Applies parsed deliveries exactly once per delivery id."""

    def __init__(self, store: Store, deploys: Deploys, incidents: Incidents, now: Now = utc_now) -> None:
        self._store = store
        self._deploys = deploys
        self._incidents = incidents
        self._now = now
        self._lock = threading.Lock()

    def receive(self, source: str, delivery: Delivery) -> DeliveryOutcome:
        """Apply a delivery unless its id was seen before; records are idempotent anyway, so a crash between
        applying and remembering only means the redelivery is applied again, to the same result."""
        with self._lock:
            if delivery.delivery_id and store_records.delivery_seen(self._store, source, delivery.delivery_id):
                return DeliveryOutcome(duplicate=True)
            deploys = [self._deploys.record(event) for event in delivery.deploys]
            alerts = [self._incidents.apply_alert(alert) for alert in delivery.alerts]
            if delivery.delivery_id:
                store_records.record_delivery(self._store, source, delivery.delivery_id, received_at=self._now())
        return DeliveryOutcome(
            duplicate=False,
            deploy_ids=tuple(d.deploy_id for d in deploys),
            incident_ids=tuple(dict.fromkeys(a.incident_id for a in alerts)),
            created=any(d.created for d in deploys) or any(a.created for a in alerts),
        )
