"""SQL fragments every telemetry query shares: what a request is, what an error is, in both exporter spellings.

Constants of this module, never outside input; queries paste them in and bind every value as a parameter.
"""

from __future__ import annotations

# Exporters before ~v0.109 wrote SPAN_KIND_SERVER / STATUS_CODE_ERROR; every read accepts both (SCHEMA.md).
IS_REQUEST = "SpanKind IN ('Server', 'Consumer', 'SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')"
"""A span that is a request a service served: a server or consumer span."""

IS_CLIENT_CALL = "SpanKind IN ('Client', 'Producer', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')"
"""A span that is a call a service made: a client or producer span."""

HTTP_STATUS = (
    "toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '', "
    "SpanAttributes['http.response.status_code'], SpanAttributes['http.status_code']))"
)
"""The HTTP status of a span, current attribute name first, 0 when none."""

PEER_NAME = (
    "multiIf(SpanAttributes['peer.service'] != '', SpanAttributes['peer.service'],"
    " SpanAttributes['server.address'] != '', SpanAttributes['server.address'],"
    " SpanAttributes['net.peer.name'])"
)
"""Whom a client span says it called: `peer.service`, else `server.address` (legacy `net.peer.name`)."""

IS_ERROR = f"(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR {HTTP_STATUS} >= 500)"
"""A failed request: status Error in either spelling, or an HTTP 5xx."""

KIND_OUT = (
    "multiIf(SpanKind LIKE 'SPAN_KIND_%', "
    "concat(upper(substring(SpanKind, 11, 1)), lower(substring(SpanKind, 12))), SpanKind)"
)
"""SpanKind in the current spelling (`Server`), whichever is stored (API.md: kinds come out current)."""

STATUS_OUT = (
    "multiIf(StatusCode LIKE 'STATUS_CODE_%', "
    "concat(upper(substring(StatusCode, 13, 1)), lower(substring(StatusCode, 14))), StatusCode)"
)
"""StatusCode in the current spelling (`Error`), whichever is stored."""

IS_ERROR_LOG = "SeverityNumber >= 17"
"""A log record at ERROR or above."""

EXCEPTION_TYPE = "Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type']"
"""The exception type of a span's first exception event ('' when none)."""

EXCEPTION_MESSAGE = "Events.Attributes[indexOf(Events.Name, 'exception')]['exception.message']"
"""The exception message of a span's first exception event ('' when none)."""

ERROR_TYPE = (
    f"if({EXCEPTION_TYPE} != '', {EXCEPTION_TYPE}, "
    f"if({HTTP_STATUS} >= 500, concat('HTTP ', toString({HTTP_STATUS})), 'error'))"
)
"""What kind of error a failed span is: its exception type, else `HTTP 503`, else `error`."""

ERROR_SHAPE = (
    "replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(replaceRegexpAll("
    f"if({EXCEPTION_MESSAGE} != '', {EXCEPTION_MESSAGE}, StatusMessage), "
    "'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<uuid>'), "
    "'\\\\b[0-9a-fA-F]{16,}\\\\b', '<hex>'), "
    "'\\'[^\\']*\\'', '<str>'), "
    "'[0-9]+', '<n>')"
)
"""A failed span's message with the parts that vary per occurrence (ids, numbers, quoted values) replaced,
so `order 123 not found` and `order 456 not found` are one error type."""

IN_WINDOW = "Timestamp >= {since:DateTime64(9, 'UTC')} AND Timestamp < {until:DateTime64(9, 'UTC')}"
"""The half-open window [since, until) on a table's Timestamp."""

ENVIRONMENT = (
    "if(ResourceAttributes['deployment.environment.name'] != '', ResourceAttributes['deployment.environment.name'], "
    "if(ResourceAttributes['deployment.environment'] != '', ResourceAttributes['deployment.environment'], "
    "'production'))"
)
"""The environment a row's resource names (current attribute, then the older one), `production` when none."""
