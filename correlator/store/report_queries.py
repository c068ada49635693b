"""Queries behind the MTTR and DORA reports: incidents with their stored analysis, deploys, causes, teams."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from correlator.store.client import Store
from correlator.store.schema_analysis import INCIDENT_ANALYSIS
from correlator.store.schema_otel import TRACES
from correlator.store.schema_platform import DEPLOYMENTS, INCIDENTS

# A cause from the analysis counts when its score reaches this (API.md, IncidentSummary).
CAUSE_SCORE = 0.5

INCIDENTS_OPENED = """
SELECT i.incident_id, i.service, i.severity, i.labels, i.opened_at, i.acknowledged_at, i.resolved_at,
       a.impact_started_at,
       if(i.cause_deploy_id IS NOT NULL, i.cause_deploy_id,
          if(a.top_suspect_score >= {cause_score:Float64}, a.top_suspect_deploy_id, NULL)) AS cause
FROM (
    SELECT * FROM $incidents FINAL
    WHERE opened_at >= {since:DateTime64(9, 'UTC')} AND opened_at < {until:DateTime64(9, 'UTC')}
) AS i
LEFT JOIN (
    SELECT incident_id, impact_started_at, top_suspect_deploy_id, top_suspect_score FROM $analysis FINAL
) AS a USING (incident_id)
ORDER BY i.opened_at, i.incident_id
SETTINGS join_use_nulls = 1
"""
"""Incidents opened in a window with their times, labels, stored impact start and cause."""

_INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "incident_id": pl.String(), "service": pl.String(), "severity": pl.String(),
    "labels": pl.Object(), "opened_at": pl.Datetime("us", "UTC"), "acknowledged_at": pl.Datetime("us", "UTC"),
    "resolved_at": pl.Datetime("us", "UTC"), "impact_started_at": pl.Datetime("us", "UTC"), "cause": pl.String(),
}  # fmt: skip


def _utc(value: object) -> object:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def incidents_opened(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    """One row per incident opened in [since, until)."""
    sql = store.sql(INCIDENTS_OPENED, incidents=INCIDENTS, analysis=INCIDENT_ANALYSIS)
    rows = store.rows(sql, {"since": since, "until": until, "cause_score": CAUSE_SCORE})
    return pl.DataFrame([tuple(_utc(v) for v in row) for row in rows], schema=_INCIDENT_SCHEMA, orient="row")


CAUSES = """
SELECT DISTINCT cause FROM (
    SELECT if(i.cause_deploy_id IS NOT NULL, i.cause_deploy_id,
              if(a.top_suspect_score >= {cause_score:Float64}, a.top_suspect_deploy_id, NULL)) AS cause
    FROM (SELECT incident_id, cause_deploy_id FROM $incidents FINAL) AS i
    LEFT JOIN (
        SELECT incident_id, top_suspect_deploy_id, top_suspect_score FROM $analysis FINAL
    ) AS a USING (incident_id)
    SETTINGS join_use_nulls = 1
)
WHERE cause IS NOT NULL
"""
"""Every deploy named as the cause of an incident, by hand or by a suspect scoring 0.5 or more."""


def causes(store: Store) -> set[str]:
    """Deploy ids named as an incident's cause."""
    sql = store.sql(CAUSES, incidents=INCIDENTS, analysis=INCIDENT_ANALYSIS)
    return {str(row[0]) for row in store.rows(sql, {"cause_score": CAUSE_SCORE})}


DEPLOYS_STARTED = """
SELECT deploy_id, service, environment, status, is_rollback, commit_time, finished_at, started_at
FROM $deployments FINAL
WHERE started_at >= {since:DateTime64(9, 'UTC')} AND started_at < {until:DateTime64(9, 'UTC')}
  AND environment = {environment:String}
  AND ({service:Nullable(String)} IS NULL OR service = {service:Nullable(String)})
ORDER BY started_at, deploy_id
"""
"""Deploys started in a window in one environment, optionally of one service."""

_DEPLOY_SCHEMA: dict[str, pl.DataType] = {
    "deploy_id": pl.String(), "service": pl.String(), "environment": pl.String(), "status": pl.String(),
    "is_rollback": pl.Boolean(), "commit_time": pl.Datetime("us", "UTC"), "finished_at": pl.Datetime("us", "UTC"),
    "started_at": pl.Datetime("us", "UTC"),
}  # fmt: skip


def deploys_started(
    store: Store, since: datetime, until: datetime, environment: str, service: str | None
) -> pl.DataFrame:
    """One row per deploy started in the window in the environment."""
    parameters = {"since": since, "until": until, "environment": environment, "service": service}
    rows = store.rows(store.sql(DEPLOYS_STARTED, deployments=DEPLOYMENTS), parameters)
    return pl.DataFrame([tuple(_utc(v) for v in row) for row in rows], schema=_DEPLOY_SCHEMA, orient="row")


SERVICE_ENVIRONMENTS = """
SELECT service, groupUniqArray(environment) FROM $deployments FINAL
WHERE has({services:Array(String)}, service)
GROUP BY service
"""
"""The environments each service was deployed to."""


def service_environments(store: Store, services: Sequence[str]) -> dict[str, list[str]]:
    """Service to the environments its deploys went to."""
    sql = store.sql(SERVICE_ENVIRONMENTS, deployments=DEPLOYMENTS)
    return {str(s): sorted(envs) for s, envs in store.rows(sql, {"services": list(services)})}


SERVICE_NAMESPACES = """
SELECT ServiceName, anyLast(ResourceAttributes['service.namespace'])
FROM $traces
WHERE ServiceName IN {services:Array(String)}
  AND Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp < {until:DateTime64(9, 'UTC')}
  AND ResourceAttributes['service.namespace'] != ''
GROUP BY ServiceName
"""
"""The service.namespace each service's spans carried in a window (a team, where owners are not mapped)."""


def service_namespaces(store: Store, services: Sequence[str], since: datetime, until: datetime) -> dict[str, str]:
    """Service to its service.namespace."""
    sql = store.sql(SERVICE_NAMESPACES, traces=TRACES)
    return {str(s): str(ns) for s, ns in store.rows(sql, {"services": list(services), "since": since, "until": until})}
