"""The stored result of each incident's analysis, so reports and dashboards read one reproducible answer."""

from __future__ import annotations

from correlator.store.ddl import Column, CreateTable, Migration

INCIDENT_ANALYSIS = "incident_analysis"

_TIME = "DateTime64(9, 'UTC')"

# One row per incident (latest computation wins); `frozen` rows are never recomputed.
_incident_analysis = CreateTable(
    table=INCIDENT_ANALYSIS,
    columns=(
        Column("incident_id", "String"),
        Column("service", "LowCardinality(String)"),
        Column("impact_started_at", f"Nullable({_TIME})"),
        # How the impact start was found: `error_ratio`, `p95` or `none`.
        Column("impact_signal", "LowCardinality(String)"),
        # Suspects as JSON (deploy_id, service, version, started_at, score, relation, evidence), best first.
        Column("suspects", "String"),
        Column("top_suspect_deploy_id", "Nullable(String)"),
        Column("top_suspect_score", "Nullable(Float64)"),
        Column("affected_services", "Array(String)"),
        Column("exemplar_trace_ids", "Array(String)"),
        # Top error types as JSON (type, message, count).
        Column("top_errors", "String"),
        Column("computed_at", _TIME),
        Column("frozen", "Bool"),
    ),
    engine="ReplacingMergeTree(computed_at)",
    order_by="incident_id",
    settings="index_granularity = 1024",
    sharding_key="cityHash64(incident_id)",
)

ANALYSIS_TABLES = Migration(version=3, name="incident analysis", operations=(_incident_analysis,))
