"""Attribute values as the Collector's `pcommon.Value.AsString()` writes them, so our rows match the exporter's."""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# Go's encoding/json escapes these inside strings (HTML safety); Python's json does not.
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def format_double(value: float) -> str:
    """A double as Go's JSON writes it: shortest round trip, plain notation unless < 1e-6 or >= 1e21."""
    if math.isnan(value) or math.isinf(value):
        sign = "+" if value > 0 else "-" if value < 0 else ""
        return f"json: unsupported value: {sign}{'Inf' if math.isinf(value) else 'NaN'}"
    text = repr(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = text.partition("e")
        # Go keeps at least two exponent digits for e+, but drops the leading zero of e-0N.
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        if sign == "+" and len(digits) < 2:
            digits = digits.rjust(2, "0")
        return f"{mantissa.removesuffix('.0')}e{sign}{digits}"
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text.removesuffix(".0") if "." in text else text


def _raw(value: AnyValue) -> Any:
    """The Python value of an AnyValue, shaped like pcommon's AsRaw for JSON encoding."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _GoFloat(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value":
        return [_raw(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    return None


class _GoFloat(float):
    """A float that our JSON writer prints the Go way."""


def _to_json(raw: Any) -> str:
    if isinstance(raw, _GoFloat):
        if math.isnan(raw) or math.isinf(raw):
            raise ValueError("unsupported float")
        return format_double(raw)
    if isinstance(raw, bool) or raw is None:
        return json.dumps(raw)
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False).translate(_GO_ESCAPES)
    if isinstance(raw, list):
        return "[" + ",".join(_to_json(item) for item in raw) + "]"
    items = sorted(raw.items())
    return "{" + ",".join(f"{_to_json(key)}:{_to_json(item)}" for key, item in items) + "}"


def as_string(value: AnyValue) -> str:
    """One attribute value as the stored string: bools true/false, ints decimal, doubles Go-style,
    bytes base64, arrays and maps compact JSON with sorted keys."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind in ("array_value", "kvlist_value"):
        try:
            return _to_json(_raw(value))
        except ValueError:
            return ""  # Go's json.Marshal fails on NaN/Inf and AsString then yields an empty string
    return ""


def attributes_map(attributes: Any) -> dict[str, str]:
    """A repeated KeyValue as the stored Map(String, String); a later duplicate key wins."""
    result: dict[str, str] = {}
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        # The common case first: most attributes are strings.
        result[kv.key] = value.string_value if kind == "string_value" else as_string(value)
    return result
