"""ExportLogsServiceRequest to otel_logs rows, as the clickhouseexporter maps log records."""

from __future__ import annotations

from typing import Any

from correlator.otlp.rows import ColumnBlock, Mapped, hex_id, signed_ns
from correlator.otlp.values import as_string, attributes_map

LOG_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes", "EventName",
)  # fmt: skip


def log_problem(record: Any) -> str | None:
    """Why a log record cannot be stored, or None."""
    if record.trace_id and len(record.trace_id) != 16:
        return f"log record: trace_id must be 16 bytes or empty, got {len(record.trace_id)}"
    if record.span_id and len(record.span_id) != 8:
        return f"log record: span_id must be 8 bytes or empty, got {len(record.span_id)}"
    return None


def map_logs(request: Any, table: str = "otel_logs") -> Mapped:
    """Flatten log records into one columnar block; a record's time falls back to its observed time."""
    block = ColumnBlock(table, LOG_COLUMNS)
    mapped = Mapped({table: block})
    (ts, trace_ids, span_ids, flags, severity_texts, severity_numbers, services, bodies, resource_urls,
     resources, scope_urls, scope_names, scope_versions, scope_attrs, log_attrs, event_names) = block.data  # fmt: skip
    for resource_logs in request.resource_logs:
        resource = attributes_map(resource_logs.resource.attributes)
        service = resource.get("service.name", "")
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_map = attributes_map(scope.attributes)
            for record in scope_logs.log_records:
                problem = log_problem(record)
                if problem:
                    mapped.reject(problem)
                    continue
                ts.append(signed_ns(record.time_unix_nano or record.observed_time_unix_nano))
                trace_ids.append(hex_id(record.trace_id))
                span_ids.append(hex_id(record.span_id))
                flags.append(record.flags & 0xFF)
                severity_texts.append(record.severity_text)
                severity_numbers.append(record.severity_number & 0xFF)  # Go's uint8(): the low byte
                services.append(service)
                bodies.append(as_string(record.body))
                resource_urls.append(resource_logs.schema_url)
                resources.append(resource)
                scope_urls.append(scope_logs.schema_url)
                scope_names.append(scope.name)
                scope_versions.append(scope.version)
                scope_attrs.append(scope_map)
                log_attrs.append(attributes_map(record.attributes))
                event_names.append(record.event_name)
                mapped.accepted += 1
    return mapped
