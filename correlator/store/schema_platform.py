"""The tables the correlator owns: deploys, incidents and their timeline, webhook deliveries, service versions.

Their layout is ours (SCHEMA.md fixes only their meaning); docs/tables.md documents them for dashboards.
Records that change (a deploy's status, an incident's state) are ReplacingMergeTree rows versioned by
`updated_at`: every change writes a whole new row and reads take the newest (`FINAL`). On a cluster FINAL only
merges within a shard, so each table's sharding key is a function of its ORDER BY key: every version of a row
lands on the same shard (docs/cluster.md).
"""

from __future__ import annotations

from correlator.store.ddl import MAP, Column, CreateMaterializedView, CreateTable, Migration
from correlator.store.schema_otel import LOGS, TRACES

DEPLOYMENTS = "deployments"
INCIDENTS = "incidents"
INCIDENT_EVENTS = "incident_events"
WEBHOOK_DELIVERIES = "webhook_deliveries"
SERVICE_VERSION_MINUTES = "service_version_minutes"
SERVICE_VERSIONS = "service_versions"

TIME = "DateTime64(9, 'UTC')"
MAYBE_TIME = f"Nullable({TIME})"
# Small tables read by key: a fine granularity keeps point reads cheap; no TTL-only-drop here.
SMALL_TABLE = "index_granularity = 1024"

_deployments = CreateTable(
    table=DEPLOYMENTS,
    columns=(
        Column("deploy_id", "String"),
        Column("service", "LowCardinality(String)"),
        Column("environment", "LowCardinality(String)"),
        Column("version", "String"),
        Column("previous_version", "Nullable(String)"),
        Column("revision", "Nullable(String)"),
        Column("commit_time", MAYBE_TIME),
        # `status` is what readers see: `reported_status`, unless a later rollback undid the deploy.
        Column("status", "LowCardinality(String)"),
        Column("reported_status", "LowCardinality(String)"),
        Column("started_at", TIME),
        Column("finished_at", MAYBE_TIME),
        Column("source", "LowCardinality(String)"),
        Column("url", "Nullable(String)"),
        Column("is_rollback", "Bool"),
        Column("rollback_of", "Nullable(String)"),
        Column("attributes", MAP),
        Column("created_at", TIME),
        Column("updated_at", TIME),
        # A telemetry-found deploy that an explicit event turned out to cover is deleted, not left as a twin.
        Column("is_deleted", "UInt8"),
    ),
    engine="ReplacingMergeTree(updated_at, is_deleted)",
    order_by="deploy_id",
    settings=SMALL_TABLE,
    sharding_key="cityHash64(deploy_id)",
)

_incidents = CreateTable(
    table=INCIDENTS,
    columns=(
        Column("incident_id", "String"),
        Column("title", "String"),
        Column("service", "LowCardinality(String)"),
        Column("severity", "Nullable(String)"),
        Column("status", "LowCardinality(String)"),
        Column("source", "LowCardinality(String)"),
        Column("labels", MAP),
        Column("fingerprint", "Nullable(String)"),
        Column("alert_starts_at", MAYBE_TIME),
        Column("summary", "Nullable(String)"),
        Column("url", "Nullable(String)"),
        Column("opened_at", TIME),
        Column("acknowledged_at", MAYBE_TIME),
        Column("mitigated_at", MAYBE_TIME),
        Column("resolved_at", MAYBE_TIME),
        Column("cause_deploy_id", "Nullable(String)"),
        Column("created_at", TIME),
        Column("updated_at", TIME),
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="incident_id",
    settings=SMALL_TABLE,
    sharding_key="cityHash64(incident_id)",
)

# Append-only: `event_key` names the fact (an alert's firing, a transition, a note), so a replayed
# notification lands on the same row instead of adding one.
_incident_events = CreateTable(
    table=INCIDENT_EVENTS,
    columns=(
        Column("incident_id", "String"),
        Column("event_key", "String"),
        Column("at", TIME),
        Column("kind", "LowCardinality(String)"),
        Column("text", "String"),
        Column("recorded_at", TIME),
    ),
    engine="ReplacingMergeTree(recorded_at)",
    order_by="(incident_id, event_key)",
    settings=SMALL_TABLE,
    sharding_key="cityHash64(incident_id)",
)

_webhook_deliveries = CreateTable(
    table=WEBHOOK_DELIVERIES,
    columns=(
        Column("source", "LowCardinality(String)"),
        Column("delivery_id", "String"),
        Column("received_at", TIME),
    ),
    engine="ReplacingMergeTree(received_at)",
    order_by="(source, delivery_id)",
    settings=SMALL_TABLE,
    sharding_key="cityHash64(source, delivery_id)",
)

# Which (service, environment, version, deployment.id) sent telemetry in which minute: kept by materialized
# views over the exporter's tables, so it also fills when collectors write to ClickHouse directly.
_service_version_minutes = CreateTable(
    table=SERVICE_VERSION_MINUTES,
    columns=(
        Column("ServiceName", "LowCardinality(String)"),
        Column("Environment", "LowCardinality(String)"),
        Column("Version", "String"),
        Column("DeploymentId", "String"),
        Column("Minute", "DateTime('UTC')"),
        Column("Revision", "SimpleAggregateFunction(anyLast, String)"),
        Column("Records", "SimpleAggregateFunction(sum, UInt64)"),
        Column("FirstSeen", f"SimpleAggregateFunction(min, {TIME})"),
        Column("LastSeen", f"SimpleAggregateFunction(max, {TIME})"),
        # When rows last arrived (not telemetry time, which may be history): what a reconcile looks at.
        Column("InsertedAt", "SimpleAggregateFunction(max, DateTime64(3, 'UTC'))"),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Minute)",
    order_by="(ServiceName, Environment, Minute, Version, DeploymentId)",
    settings=SMALL_TABLE,
    # Only the views write here, each on the node of its source rows, so one key's partial aggregates may sit
    # on several shards: every read aggregates (GROUP BY), which is right anyway before merges. The key below
    # spreads direct inserts only, and, being random, never lets a query skip a shard that holds the key.
    sharding_key="rand64()",
)

# Resource attribute names: the current semantic conventions first, the older spelling as a fallback.
_VERSION_MINUTES_SELECT = """SELECT
    ServiceName,
    if(ResourceAttributes['deployment.environment.name'] != '', ResourceAttributes['deployment.environment.name'],
       if(ResourceAttributes['deployment.environment'] != '', ResourceAttributes['deployment.environment'],
          'production')) AS Environment,
    ResourceAttributes['service.version'] AS Version,
    ResourceAttributes['deployment.id'] AS DeploymentId,
    toStartOfMinute(Timestamp) AS Minute,
    anyLast(ResourceAttributes['vcs.ref.head.revision']) AS Revision,
    count() AS Records,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen,
    now64(3) AS InsertedAt
FROM {source}
WHERE ServiceName != '' AND (Version != '' OR DeploymentId != '')
GROUP BY ServiceName, Environment, Version, DeploymentId, Minute"""


def _version_minutes_view(source: str) -> CreateMaterializedView:
    return CreateMaterializedView(
        view=f"{SERVICE_VERSION_MINUTES}_{source}_mv",
        to_table=SERVICE_VERSION_MINUTES,
        source_table=source,
        select=_VERSION_MINUTES_SELECT,
    )


# Runs of a version, derived from the minutes by the correlator (a version that comes back is a new run).
_service_versions = CreateTable(
    table=SERVICE_VERSIONS,
    columns=(
        Column("service", "LowCardinality(String)"),
        Column("environment", "LowCardinality(String)"),
        Column("version", "String"),
        Column("deployment_id", "String"),
        Column("revision", "String"),
        Column("first_seen", TIME),
        Column("last_seen", TIME),
        Column("records", "UInt64"),
        Column("deploy_id", "String"),
        Column("updated_at", TIME),
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="(service, environment, first_seen, version, deployment_id)",
    settings=SMALL_TABLE,
    sharding_key="cityHash64(service, environment)",
)

PLATFORM_TABLES = Migration(
    version=2,
    name="deploys, incidents, deliveries and service versions",
    operations=(
        _deployments,
        _incidents,
        _incident_events,
        _webhook_deliveries,
        _service_version_minutes,
        _version_minutes_view(TRACES),
        _version_minutes_view(LOGS),
        _service_versions,
    ),
)
