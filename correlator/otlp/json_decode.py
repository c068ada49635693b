"""OTLP JSON to protobuf messages, an order of magnitude faster than protobuf's generic json_format.

The OTLP spec's JSON differs from protobuf's JSON mapping only in trace and span ids (hex, not base64); the
rest (lowerCamelCase or original field names, enums as integers or names, 64-bit integers as strings or
numbers, bytes as base64) is protobuf's mapping, which this follows, ignoring unknown fields as the spec asks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from correlator.errors import UndecodableBody

_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
# An id that is not hex becomes one byte: an invalid length the mapping rejects record by record.
_INVALID_ID = b"\xff"
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SINT32,
    }
)  # fmt: skip
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# The deepest message protobuf decodes (upb's default limit; the request is depth 0). A JSON body nested deeper
# would be accepted here and then fail where the engine path re-reads its protobuf serialization.
MAX_DEPTH = 100


@functools.cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """A message's fields by JSON name and by original name."""
    table: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        table[field.name] = field
        table[field.json_name] = field
    return table


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
    elif kind == FieldDescriptor.TYPE_BYTES:
        if isinstance(value, str):
            if field.name in _ID_FIELDS:
                try:
                    return bytes.fromhex(value)
                except ValueError:
                    return _INVALID_ID
            # Like protobuf's JSON mapping: standard or URL-safe alphabet, padding optional.
            padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
            try:
                return base64.b64decode(padded, validate=True)
            except binascii.Error as e:
                raise UndecodableBody(f"{path}: expected base64, got {value[:40]!r}") from e
    elif kind in _INTEGER_TYPES:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind in _FLOAT_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            if value in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[value]
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
    elif kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and field.enum_type is not None:
            # Enum names are ASCII; upb raises SystemError looking up a str it cannot encode (a lone surrogate).
            number = field.enum_type.values_by_name.get(value) if value.isascii() else None
            if number is not None:
                return number.number
            if value.lstrip("-").isdigit():
                return int(value)
    raise UndecodableBody(f"{path}: {str(value)[:40]!r} is not a valid {_type_word(field)}")


def _type_word(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        return f"{field.enum_type.name} value"
    return {
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes value",
        FieldDescriptor.TYPE_BOOL: "boolean",
    }.get(field.type, "float" if field.type in _FLOAT_TYPES else "integer")


def fill(message: Message, document: Any, path: str, depth: int = 0) -> None:
    """Set a message's fields from a decoded JSON object."""
    if not isinstance(document, dict):
        raise UndecodableBody(f"{path}: expected a JSON object, got {type(document).__name__}")
    if depth > MAX_DEPTH:
        raise UndecodableBody(f"{path}: messages nested more than {MAX_DEPTH} deep")
    fields = _fields(message.DESCRIPTOR)
    for key, value in document.items():
        field = fields.get(key)
        if field is None or value is None:
            continue  # unknown fields are ignored, as the OTLP spec asks
        where = f"{path}.{key}"
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.is_repeated:
            if not isinstance(value, list):
                raise UndecodableBody(f"{where}: expected a JSON array, got {type(value).__name__}")
            container = getattr(message, field.name)
            if is_message:
                for index, item in enumerate(value):
                    fill(container.add(), item, f"{where}[{index}]", depth + 1)
            else:
                container.extend(_scalar(field, item, f"{where}[{index}]") for index, item in enumerate(value))
        elif is_message:
            child = getattr(message, field.name)
            child.SetInParent()  # present even when empty: an empty arrayValue is still an array
            fill(child, value, where, depth + 1)
        else:
            setattr(message, field.name, _scalar(field, value, where))
