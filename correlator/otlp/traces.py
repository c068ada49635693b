"""ExportTraceServiceRequest to otel_traces rows, as the clickhouseexporter maps spans."""

from __future__ import annotations

from typing import Any

from correlator.otlp.rows import ColumnBlock, Mapped, hex_id, signed_ns
from correlator.otlp.values import attributes_map

TRACE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)  # fmt: skip
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


def span_problem(span: Any) -> str | None:
    """Why a span cannot be stored, or None."""
    if len(span.trace_id) != 16:
        return f"span {span.name!r}: trace_id must be 16 bytes, got {len(span.trace_id)}"
    if len(span.span_id) != 8:
        return f"span {span.name!r}: span_id must be 8 bytes, got {len(span.span_id)}"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: parent_span_id must be 8 bytes, got {len(span.parent_span_id)}"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return f"span {span.name!r}: end_time_unix_nano is before start_time_unix_nano"
    return None


def map_traces(request: Any, table: str = "otel_traces") -> Mapped:
    """Flatten spans into one columnar block; spans with bad ids are rejected, the rest kept."""
    block = ColumnBlock(table, TRACE_COLUMNS)
    mapped = Mapped({table: block})
    (ts, trace_ids, span_ids, parents, states, names, kinds, services, resources, scope_names, scope_versions,
     span_attrs, durations, status_codes, status_messages, ev_ts, ev_names, ev_attrs,
     link_traces, link_spans, link_states, link_attrs) = block.data  # fmt: skip
    for resource_spans in request.resource_spans:
        resource = attributes_map(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                problem = span_problem(span)
                if problem:
                    mapped.reject(problem)
                    continue
                start = span.start_time_unix_nano
                ts.append(signed_ns(start))
                trace_ids.append(hex_id(span.trace_id))
                span_ids.append(hex_id(span.span_id))
                parents.append(hex_id(span.parent_span_id))
                states.append(span.trace_state)
                names.append(span.name)
                # Values outside the enums are written as the exporter's String() writes them: ''.
                kinds.append(SPAN_KINDS[span.kind] if 0 <= span.kind < 6 else "")
                services.append(service)
                resources.append(resource)
                scope_names.append(scope.name)
                scope_versions.append(scope.version)
                span_attrs.append(attributes_map(span.attributes))
                durations.append(span.end_time_unix_nano - start)
                code = span.status.code
                status_codes.append(STATUS_CODES[code] if 0 <= code < 3 else "")
                status_messages.append(span.status.message)
                events = span.events
                ev_ts.append([signed_ns(e.time_unix_nano) for e in events])
                ev_names.append([e.name for e in events])
                ev_attrs.append([attributes_map(e.attributes) for e in events])
                links = span.links
                link_traces.append([hex_id(link.trace_id) for link in links])
                link_spans.append([hex_id(link.span_id) for link in links])
                link_states.append([link.trace_state for link in links])
                link_attrs.append([attributes_map(link.attributes) for link in links])
                mapped.accepted += 1
    return mapped
