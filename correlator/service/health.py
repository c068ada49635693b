"""Service health: RED from spans, error logs, versions and deploys, incidents, neighbours, top errors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from correlator.correlate.health import (
    HealthThresholds,
    ServiceRed,
    endpoints_by_service,
    errors_by_service,
    service_red,
)
from correlator.errors import NotFound
from correlator.events.times import Window
from correlator.model import Deploy, Endpoint, ErrorCount, Incident
from correlator.service.clock import Now, utc_now
from correlator.service.deploys import Deploys
from correlator.service.incidents import ACTIVE_STATES
from correlator.service.topology import service_topology
from correlator.store import Store
from correlator.store import health_queries as q
from correlator.store import records as store_records
from correlator.store.records import DeployFilter, IncidentFilter

RECENT_DEPLOYS = timedelta(days=7)
BASELINE = timedelta(hours=24)


@dataclass(frozen=True)
class ServiceHealth:
    """Everything the health view shows of one service in a window (API.md, ServiceHealth)."""

    since: datetime
    until: datetime
    red: ServiceRed
    current_version: str | None
    current_deploy_id: str | None
    recent_deploys: list[Deploy]
    open_incidents: list[Incident]
    upstream: list[str]
    downstream: list[str]
    top_errors: list[ErrorCount]
    top_endpoints: list[Endpoint]


class Health:
    """The health use case over the store; reads only."""

    def __init__(
        self, store: Store, deploys: Deploys, thresholds: HealthThresholds | None = None, now: Now = utc_now
    ) -> None:
        self._store = store
        self._deploys = deploys
        self._thresholds = thresholds or HealthThresholds()
        self._now = now

    def service(self, name: str, window: Window) -> ServiceHealth:
        """One service's health; 404 when the service is unknown (no telemetry, deploy or incident ever)."""
        if not store_records.known_service(self._store, name):
            raise NotFound(f"no service named {name!r}: it has sent no telemetry and has no deploy or incident")
        return self._health([name], window)[0]

    def services(self, window: Window) -> list[ServiceHealth]:
        """Every service with telemetry or deploys in the window, or an active incident."""
        whole = window.whole_minutes()
        names = q.active_services(self._store, whole.since, whole.until)
        return self._health(names, window) if names else []

    def _health(self, names: list[str], asked: Window) -> list[ServiceHealth]:
        self._deploys.reconcile()
        # Whole minutes: the per-minute tables answer them alone, while a partial minute at an edge costs a scan of
        # most of otel_traces' day (its sort key puts time third). The answer says which window it covers.
        window = asked.whole_minutes()
        store, since, until = self._store, window.since, window.until
        reds = service_red(
            names,
            q.red(store, names, since, until),
            q.log_errors(store, names, since, until),
            q.baseline_p95(store, names, since - BASELINE, since),
            (until - since).total_seconds(),
            self._thresholds,
        )
        errors = errors_by_service(q.top_errors(store, names, since, until))
        endpoints = endpoints_by_service(q.top_endpoints(store, names, since, until))
        versions: dict[str, str] = dict(q.current_versions(store, names).select("service", "version").iter_rows())
        run_deploys: dict[str, str] = dict(q.current_run_deploys(store, names).iter_rows())
        now = self._now()
        recent: dict[str, list[Deploy]] = defaultdict(list)
        lately = DeployFilter(now - RECENT_DEPLOYS, now + timedelta(days=1), limit=1000)
        for deploy in store_records.list_deploys(store, lately):
            recent[deploy.service].append(deploy)
        incidents: dict[str, list[Incident]] = defaultdict(list)
        active = IncidentFilter(since, until, statuses=ACTIVE_STATES, window=False, limit=1000)
        for incident in store_records.list_incidents(store, active):
            incidents[incident.service].append(incident)
        topology = service_topology(store, since, until, now)
        result = []
        for red in reds:
            name = red.service
            latest = recent[name][0] if recent[name] else None
            result.append(
                ServiceHealth(
                    since=since,
                    until=until,
                    red=red,
                    current_version=versions.get(name) or (latest.version if latest else None),
                    current_deploy_id=run_deploys.get(name) or (latest.deploy_id if latest else None),
                    recent_deploys=recent[name],
                    open_incidents=incidents[name],
                    upstream=sorted({e.source for e in topology.edges if e.destination == name}),
                    downstream=sorted({e.destination for e in topology.edges if e.source == name}),
                    top_errors=errors.get(name, []),
                    top_endpoints=endpoints.get(name, []),
                )
            )
        return result
