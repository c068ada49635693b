"""Reads and writes of the correlator's own records: deploys, incidents, timelines, deliveries, version runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from correlator.model import Deploy, Incident, TimelineEntry, VersionMinute, VersionRun
from correlator.store.client import Store
from correlator.store.schema_otel import LOGS, METRIC_TABLES, TRACES
from correlator.store.schema_platform import (
    DEPLOYMENTS,
    INCIDENT_EVENTS,
    INCIDENTS,
    SERVICE_VERSION_MINUTES,
    SERVICE_VERSIONS,
    WEBHOOK_DELIVERIES,
)

_DEPLOY_FIELDS = tuple(f.name for f in dataclasses.fields(Deploy))
_INCIDENT_FIELDS = tuple(f.name for f in dataclasses.fields(Incident))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: Any) -> Any:
    # clickhouse-connect hands DateTime64 back naive; the session runs in UTC, so naive means UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(cls: type[Any], fields: Sequence[str], row: Sequence[Any]) -> Any:
    values = {name: _utc(value) for name, value in zip(fields, row, strict=True)}
    return cls(**values)


@dataclass(frozen=True)
class DeployFilter:
    """Which deploys a list wants: started in [since, until), optionally of one service or environment."""

    since: datetime
    until: datetime
    service: str | None = None
    environment: str | None = None
    limit: int = 100


def write_deploys(store: Store, deploys: Sequence[Deploy], *, updated_at: datetime, deleted: bool = False) -> None:
    """Write whole deploy rows; the newest `updated_at` of a deploy id wins on read."""
    if not deploys:
        return
    deploys = [d if d.created_at else dataclasses.replace(d, created_at=updated_at) for d in deploys]
    columns = [[getattr(d, name) for d in deploys] for name in _DEPLOY_FIELDS]
    columns.append([updated_at] * len(deploys))
    columns.append([1 if deleted else 0] * len(deploys))
    store.insert_columns(DEPLOYMENTS, [*_DEPLOY_FIELDS, "updated_at", "is_deleted"], columns)


def _select_deploys(store: Store, where: str, tail: str = "") -> str:
    return f"SELECT {', '.join(_DEPLOY_FIELDS)} FROM {store.table(DEPLOYMENTS)} FINAL WHERE {where} {tail}"


def get_deploy(store: Store, deploy_id: str) -> Deploy | None:
    """One deploy by id, or None."""
    rows = store.rows(_select_deploys(store, "deploy_id = {id:String}"), {"id": deploy_id})
    return _record(Deploy, _DEPLOY_FIELDS, rows[0]) if rows else None


Pair = tuple[str, str]  # (service, environment)


def deploys_of_pairs(store: Store, pairs: Sequence[Pair]) -> dict[Pair, list[Deploy]]:
    """Every deploy of each (service, environment), oldest first: the chains rollbacks are found in."""
    found: dict[Pair, list[Deploy]] = {pair: [] for pair in pairs}
    if not pairs:
        return found
    sql = _select_deploys(
        store, "(service, environment) IN {pairs:Array(Tuple(String, String))}", "ORDER BY started_at"
    )
    for row in store.rows(sql, {"pairs": list(pairs)}):
        deploy = _record(Deploy, _DEPLOY_FIELDS, row)
        found[(deploy.service, deploy.environment)].append(deploy)
    return found


def deploys_of(store: Store, service: str, environment: str) -> list[Deploy]:
    """Every deploy of one (service, environment), oldest first."""
    return deploys_of_pairs(store, [(service, environment)])[(service, environment)]


def list_deploys(store: Store, wanted: DeployFilter) -> list[Deploy]:
    """Deploys started in the window, newest first."""
    sql = _select_deploys(
        store,
        "started_at >= {since:DateTime64(9, 'UTC')} AND started_at < {until:DateTime64(9, 'UTC')}"
        " AND ({service:Nullable(String)} IS NULL OR service = {service:Nullable(String)})"
        " AND ({env:Nullable(String)} IS NULL OR environment = {env:Nullable(String)})",
        "ORDER BY started_at DESC, deploy_id LIMIT {limit:UInt32}",
    )
    parameters = {
        "since": wanted.since,
        "until": wanted.until,
        "service": wanted.service,
        "env": wanted.environment,
        "limit": wanted.limit,
    }
    return [_record(Deploy, _DEPLOY_FIELDS, row) for row in store.rows(sql, parameters)]


def write_incident(store: Store, incident: Incident, *, updated_at: datetime) -> None:
    """Write an incident's whole row; the newest `updated_at` wins on read."""
    if incident.created_at is None:
        incident = dataclasses.replace(incident, created_at=updated_at)
    columns = [[getattr(incident, name)] for name in _INCIDENT_FIELDS]
    columns.append([updated_at])
    store.insert_columns(INCIDENTS, [*_INCIDENT_FIELDS, "updated_at"], columns)


def _select_incidents(store: Store, where: str, tail: str = "") -> str:
    return f"SELECT {', '.join(_INCIDENT_FIELDS)} FROM {store.table(INCIDENTS)} FINAL WHERE {where} {tail}"


def get_incident(store: Store, incident_id: str) -> Incident | None:
    """One incident by id, or None."""
    rows = store.rows(_select_incidents(store, "incident_id = {id:String}"), {"id": incident_id})
    return _record(Incident, _INCIDENT_FIELDS, rows[0]) if rows else None


def incident_by_fingerprint(store: Store, source: str, fingerprint: str) -> Incident | None:
    """The newest incident a source opened for an alert fingerprint (PagerDuty keys incidents by id alone)."""
    sql = _select_incidents(
        store,
        "source = {source:String} AND fingerprint = {fingerprint:String}",
        "ORDER BY opened_at DESC LIMIT 1",
    )
    rows = store.rows(sql, {"source": source, "fingerprint": fingerprint})
    return _record(Incident, _INCIDENT_FIELDS, rows[0]) if rows else None


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents a list wants: opened in [since, until) unless `window` is off, by status, service, severity."""

    since: datetime
    until: datetime
    statuses: tuple[str, ...] = ()
    service: str | None = None
    severity: str | None = None
    window: bool = True
    limit: int = 100


def list_incidents(store: Store, wanted: IncidentFilter) -> list[Incident]:
    """Incidents matching the filter, newest opened first."""
    sql = _select_incidents(
        store,
        "(NOT {window:Bool}"
        " OR (opened_at >= {since:DateTime64(9, 'UTC')} AND opened_at < {until:DateTime64(9, 'UTC')}))"
        " AND (empty({statuses:Array(String)}) OR has({statuses:Array(String)}, status))"
        " AND ({service:Nullable(String)} IS NULL OR service = {service:Nullable(String)})"
        " AND ({severity:Nullable(String)} IS NULL OR severity = {severity:Nullable(String)})",
        "ORDER BY opened_at DESC, incident_id LIMIT {limit:UInt32}",
    )
    parameters = {
        "window": wanted.window,
        "since": wanted.since,
        "until": wanted.until,
        "statuses": list(wanted.statuses),
        "service": wanted.service,
        "severity": wanted.severity,
        "limit": wanted.limit,
    }
    return [_record(Incident, _INCIDENT_FIELDS, row) for row in store.rows(sql, parameters)]


_TIMELINE_FIELDS = ("incident_id", "event_key", "at", "kind", "text")


def append_timeline(store: Store, entries: Sequence[TimelineEntry], *, recorded_at: datetime) -> None:
    """Add timeline entries; an entry whose key is already there replaces itself (same fact, no twin)."""
    if not entries:
        return
    columns = [[getattr(e, name) for e in entries] for name in _TIMELINE_FIELDS]
    columns.append([recorded_at] * len(entries))
    store.insert_columns(INCIDENT_EVENTS, [*_TIMELINE_FIELDS, "recorded_at"], columns)


def timeline(store: Store, incident_id: str) -> list[TimelineEntry]:
    """An incident's timeline, oldest first."""
    sql = (
        f"SELECT {', '.join(_TIMELINE_FIELDS)} FROM {store.table(INCIDENT_EVENTS)} FINAL"
        " WHERE incident_id = {id:String} ORDER BY at, recorded_at, event_key"
    )
    return [_record(TimelineEntry, _TIMELINE_FIELDS, row) for row in store.rows(sql, {"id": incident_id})]


def delivery_seen(store: Store, source: str, delivery_id: str) -> bool:
    """Whether a webhook delivery was already processed."""
    sql = (
        f"SELECT count() FROM {store.table(WEBHOOK_DELIVERIES)}"
        " WHERE source = {source:String} AND delivery_id = {id:String}"
    )
    return bool(store.rows(sql, {"source": source, "id": delivery_id})[0][0])


def record_delivery(store: Store, source: str, delivery_id: str, *, received_at: datetime) -> None:
    """Remember a processed webhook delivery, so a redelivery is recognised."""
    store.insert_columns(
        WEBHOOK_DELIVERIES, ["source", "delivery_id", "received_at"], [[source], [delivery_id], [received_at]]
    )


def services_with_new_versions(store: Store, inserted_since: datetime) -> list[tuple[str, str, datetime]]:
    """(service, environment, earliest minute) of the version minutes that changed since a time (of insertion,
    not telemetry: history arriving late counts from its own minute)."""
    sql = (
        f"SELECT ServiceName, Environment, min(Minute) FROM {store.table(SERVICE_VERSION_MINUTES)}"
        " WHERE InsertedAt >= {since:DateTime64(3, 'UTC')}"
        " GROUP BY ServiceName, Environment ORDER BY ServiceName, Environment"
    )
    return [(str(s), str(e), _utc(minute)) for s, e, minute in store.rows(sql, {"since": inserted_since})]


def version_minutes(store: Store, first_seen_from: Mapping[Pair, datetime]) -> dict[Pair, list[VersionMinute]]:
    """The minutes in which telemetry showed a version of each (service, environment), oldest first, from the
    time given for the pair on (`EPOCH`: every one)."""
    found: dict[Pair, list[VersionMinute]] = {pair: [] for pair in first_seen_from}
    if not first_seen_from:
        return found
    sql = (
        "SELECT ServiceName, Environment, Version, DeploymentId, anyLast(Revision), min(FirstSeen) AS first,"
        f" max(LastSeen), sum(Records) FROM {store.table(SERVICE_VERSION_MINUTES)}"
        " WHERE (ServiceName, Environment) IN {pairs:Array(Tuple(String, String))}"
        " AND Minute >= toStartOfMinute({from:DateTime64(9, 'UTC')})"
        " GROUP BY ServiceName, Environment, Version, DeploymentId, Minute"
        " HAVING first >= {from:DateTime64(9, 'UTC')} ORDER BY ServiceName, Environment, Minute"
    )
    parameters = {"pairs": list(first_seen_from), "from": min(first_seen_from.values())}
    for s, e, v, d, r, first, last, n in store.rows(sql, parameters):
        minute = VersionMinute(str(s), str(e), str(v), str(d), str(r), _utc(first), _utc(last), int(n))
        if minute.first_seen >= first_seen_from[(minute.service, minute.environment)]:
            found[(minute.service, minute.environment)].append(minute)
    return found


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(VersionRun))


def write_version_runs(store: Store, runs: Sequence[tuple[VersionRun, str]], *, updated_at: datetime) -> None:
    """Store runs with the deploy each stands for (its own implicit deploy, or the explicit one covering it)."""
    if not runs:
        return
    columns = [[getattr(run, name) for run, _ in runs] for name in _RUN_FIELDS]
    columns.append([deploy_id for _, deploy_id in runs])
    columns.append([updated_at] * len(runs))
    store.insert_columns(SERVICE_VERSIONS, [*_RUN_FIELDS, "deploy_id", "updated_at"], columns)


_KNOWN_BY = (
    (SERVICE_VERSION_MINUTES, "ServiceName"),
    (DEPLOYMENTS, "service"),
    (INCIDENTS, "service"),
    (TRACES, "ServiceName"),
    *((table, "ServiceName") for table in METRIC_TABLES.values()),
    # Last: the logs' sort key starts with time, so a miss reads the whole table.
    (LOGS, "ServiceName"),
)


def known_service(store: Store, service: str) -> bool:
    """A service is known once it has telemetry, a deploy or an incident (API.md, Conventions)."""
    for table, column in _KNOWN_BY:
        sql = store.sql(f"SELECT 1 FROM $table WHERE {column} = {{s:String}} LIMIT 1", table=table)
        if store.rows(sql, {"s": service}):
            return True
    return False
