"""MTTR and DORA reports over the store, and the headline figures served as Prometheus gauges."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from correlator.correlate.reports import GROUPINGS, DoraReport, MttrReport, dora_report, mttr_report
from correlator.errors import BadRequest
from correlator.events.times import Window
from correlator.service.clock import Now, utc_now
from correlator.store import Store
from correlator.store import records as store_records
from correlator.store import report_queries as rq
from correlator.store.records import IncidentFilter

HEADLINE_WINDOW = timedelta(days=30)
# Gauges are computed at scrape time, at most this often.
HEADLINE_CACHE_S = 30.0
NO_TEAM = "unowned"


def load_owners(path: str) -> dict[str, str]:
    """Service to team from CORRELATOR_OWNERS_FILE: a JSON object, or lines `service: team` (# comments)."""
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"CORRELATOR_OWNERS_FILE: cannot read {path}: {e}") from e
    if text.lstrip().startswith("{"):
        owners = json.loads(text)
        if not isinstance(owners, dict) or not all(isinstance(v, str) for v in owners.values()):
            raise ValueError(f"CORRELATOR_OWNERS_FILE: expected a JSON object of service to team in {path}")
        return {str(k): v for k, v in owners.items()}
    owners = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        service, sep, team = (part.strip() for part in line.partition(":"))
        if not sep or not service or not team:
            raise ValueError(f"CORRELATOR_OWNERS_FILE: line {number} of {path}: expected 'service: team', got {line!r}")
        owners[service] = team
    return owners


@dataclass(frozen=True)
class Exclusions:
    """Incidents left out of a report: by id, or by a label's value."""

    incident_ids: frozenset[str]
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, items: Sequence[str]) -> Exclusions:
        ids: set[str] = set()
        labels: list[tuple[str, str]] = []
        for item in items:
            if item.startswith("label:"):
                key, sep, value = item[len("label:") :].partition("=")
                if not sep or not key:
                    raise BadRequest(f"exclude: expected an incident id or 'label:<key>=<value>', got {item!r}")
                labels.append((key, value))
            elif item:
                ids.add(item)
        return cls(frozenset(ids), tuple(labels))

    def keep(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.incident_ids and not self.labels:
            return frame
        kept = [
            row["incident_id"] not in self.incident_ids and not any(row["labels"].get(k) == v for k, v in self.labels)
            for row in frame.select("incident_id", "labels").to_dicts()
        ]
        return frame.filter(pl.Series(kept, dtype=pl.Boolean))


class Reports:
    """The reports use case; reads only, from the stored incident analyses."""

    def __init__(self, store: Store, owners: Mapping[str, str], now: Now = utc_now) -> None:
        self._store = store
        self._owners = dict(owners)
        self._now = now
        self._headline: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def mttr(self, window: Window, group_by: str | None, exclude: Sequence[str]) -> MttrReport:
        """MTTR over incidents opened in the window, optionally per group."""
        if group_by is not None and group_by not in GROUPINGS:
            raise BadRequest(f"group_by: expected one of {', '.join(GROUPINGS)}, got {group_by!r}")
        incidents = Exclusions.parse(exclude).keep(rq.incidents_opened(self._store, window.since, window.until))
        group_of = None
        if group_by == "team":
            services = incidents.get_column("service").unique().to_list()
            namespaces = rq.service_namespaces(self._store, services, window.since - timedelta(days=7), window.until)
            teams = {s: self._owners.get(s) or namespaces.get(s) or NO_TEAM for s in services}
            group_of = lambda row: teams[row["service"]]  # noqa: E731
        elif group_by == "month":
            group_of = lambda row: row["opened_at"].strftime("%Y-%m")  # noqa: E731
        elif group_by is not None:
            column = group_by
            group_of = lambda row: str(row[column] or "none")  # noqa: E731
        return mttr_report(incidents, window.since, window.until, group_of)

    def dora(self, window: Window, environment: str, service: str | None) -> DoraReport:
        """The DORA keys over deploys started in the window in one environment (optionally one service)."""
        deploys = rq.deploys_started(self._store, window.since, window.until, environment, service)
        incidents = rq.incidents_opened(self._store, window.since, window.until)
        if service is not None:
            incidents = incidents.filter(pl.col("service") == service)
        incidents = self._of_environment(incidents, environment)
        return dora_report(deploys, rq.causes(self._store), incidents, window.since, window.until, environment)

    def _of_environment(self, incidents: pl.DataFrame, environment: str) -> pl.DataFrame:
        """An incident's environment: its `environment` or `env` label, else those its service deploys to."""
        deployed = rq.service_environments(self._store, incidents.get_column("service").unique().to_list())
        kept = []
        for row in incidents.select("service", "labels").to_dicts():
            label = row["labels"].get("environment") or row["labels"].get("env")
            kept.append(label == environment if label else environment in deployed.get(row["service"], []))
        return incidents.filter(pl.Series(kept, dtype=pl.Boolean))

    def headline(self) -> dict[str, Any]:
        """Open incidents per (service, severity), MTTR and change failure rate per environment over 30 days."""
        with self._lock:
            if self._headline is not None and time.monotonic() - self._headline[0] < HEADLINE_CACHE_S:
                return self._headline[1]
            now = self._now()
            window = Window(now - HEADLINE_WINDOW, now)
            active = store_records.list_incidents(
                self._store,
                IncidentFilter(
                    window.since, now, statuses=("open", "acknowledged", "mitigated"), window=False, limit=1000
                ),
            )
            open_by: dict[tuple[str, str], int] = {}
            for incident in active:
                key = (incident.service, incident.severity or "none")
                open_by[key] = open_by.get(key, 0) + 1
            environments = {"production", *self._deploy_environments(window)}
            figures = {
                "open_incidents": open_by,
                "mttr_s": self.mttr(window, None, ()).resolve.mean_s,
                "change_failure_rate": {
                    env: self.dora(window, env, None).change_failure_rate for env in sorted(environments)
                },
            }
            self._headline = (time.monotonic(), figures)
            return figures

    def _deploy_environments(self, window: Window) -> set[str]:
        rows = store_records.list_deploys(
            self._store, store_records.DeployFilter(window.since, window.until, limit=1000)
        )
        return {d.environment for d in rows}
