"""Render a self-contained proto3 schema of the OTLP export requests for ClickHouse's Protobuf input format."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# Package of the rendered file; message names are flattened so one file holds everything.
PROTO_PACKAGE = "correlator_otlp_native"
# The only recursive type in OTLP: AnyValue -> ArrayValue/KeyValueList(-> KeyValue) -> AnyValue.
RECURSIVE_ROOT = "opentelemetry.proto.common.v1.AnyValue"
# AnyValue levels kept as messages: 1 = attribute values, 2 = elements of top-level arrays/maps.
# At the deepest level array_value/kvlist_value are declared `bytes` (same field number, same
# wire type 2), which ClickHouse can read, while it cannot follow a recursive message.
MAX_VALUE_DEPTH = 2

# Extra field appended by the writer to every request record (see native_insert.write_bodies):
# concatenating a serialized field to a serialized message adds that field, so each parsed row
# carries its position in the batch even when ClickHouse reads several files in parallel.
# The highest legal field number keeps clear of anything OTLP will ever assign.
BODY_INDEX_FIELD_NAME = "correlator_body_index"
BODY_INDEX_FIELD_NUMBER = 536870911

_PREFIX = "opentelemetry.proto."


def _flat_name(full_name: str, depth: int) -> str:
    """Flatten a fully-qualified name into a unique top-level message name."""
    name = full_name[len(_PREFIX) :] if full_name.startswith(_PREFIX) else full_name
    name = name.replace(".", "_")
    return name if depth <= 0 else f"{name}_L{depth}"


TRACES_REQUEST_FULL_NAME = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR.full_name
LOGS_REQUEST_FULL_NAME = logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR.full_name
METRICS_REQUEST_FULL_NAME = metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR.full_name
# Message names inside the rendered file, for `format_schema='<file>:<message>'`.
TRACES_REQUEST_MESSAGE = _flat_name(TRACES_REQUEST_FULL_NAME, 0)
LOGS_REQUEST_MESSAGE = _flat_name(LOGS_REQUEST_FULL_NAME, 0)
METRICS_REQUEST_MESSAGE = _flat_name(METRICS_REQUEST_FULL_NAME, 0)

_SCALAR_TYPES: dict[int, str] = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def _is_repeated(field: FieldDescriptor) -> bool:
    """Whether a field is repeated, across protobuf releases."""
    flag = getattr(field, "is_repeated", None)
    if flag is None:
        # Older protobuf releases only expose the (since deprecated) label.
        flag = getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED
    return bool(flag)


def _reaches(start: Descriptor, target: str) -> bool:
    """Whether message `start` contains (transitively) a field of message type `target`."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        msg = todo.pop()
        for field in msg.fields:
            sub = field.message_type
            if sub is None:
                continue
            if sub.full_name == target:
                return True
            if sub.full_name not in seen:
                seen.add(sub.full_name)
                todo.append(sub)
    return False


class _Renderer:
    """Walks descriptors from the request roots and emits each (message, value depth) once."""

    def __init__(self, max_value_depth: int) -> None:
        """Start with empty output."""
        self.max_value_depth = max_value_depth
        self.blocks: list[str] = []
        self.done: set[str] = set()
        self.enums: dict[str, EnumDescriptor] = {}
        self.recursive_cache: dict[str, bool] = {}

    def _leads_to_root(self, msg: Descriptor) -> bool:
        """Whether a message type can reach the recursive root (its name then depends on depth)."""
        if msg.full_name not in self.recursive_cache:
            self.recursive_cache[msg.full_name] = msg.full_name == RECURSIVE_ROOT or _reaches(msg, RECURSIVE_ROOT)
        return self.recursive_cache[msg.full_name]

    def message(self, msg: Descriptor, depth: int, stack: tuple[str, ...], extra: str = "") -> str:
        """Emit `msg` as seen at AnyValue nesting `depth`; return its flat name."""
        last_root = max((i for i, n in enumerate(stack) if n == RECURSIVE_ROOT), default=-1)
        if msg.full_name in stack[last_root + 1 :] and msg.full_name != RECURSIVE_ROOT:
            # A cycle not passing through AnyValue would be unbounded here: fail loudly.
            raise ValueError(f"unsupported recursion through {msg.full_name}")
        if msg.full_name == RECURSIVE_ROOT:
            depth += 1
        name = _flat_name(msg.full_name, depth if self._leads_to_root(msg) else 0)
        if name in self.done:
            return name
        self.done.add(name)
        lines = [f"message {name} {{"]
        oneof_open: str | None = None
        for field in sorted(msg.fields, key=lambda f: f.index):
            oneof = field.containing_oneof
            # proto3 `optional` is a synthetic oneof; render it as a plain field (presence is not needed).
            real_oneof = oneof.name if oneof is not None and len(oneof.fields) > 1 else None
            if oneof_open is not None and real_oneof != oneof_open:
                lines.append("  }")
                oneof_open = None
            if real_oneof is not None and oneof_open is None:
                lines.append(f"  oneof {real_oneof} {{")
                oneof_open = real_oneof
            indent = "    " if oneof_open else "  "
            label = "repeated " if _is_repeated(field) else ""
            lines.append(f"{indent}{label}{self._field_type(msg, field, depth, stack)} {field.name} = {field.number};")
        if oneof_open is not None:
            lines.append("  }")
        if extra:
            lines.append(extra)
        lines.append("}")
        self.blocks.append("\n".join(lines))
        return name

    def _field_type(self, owner: Descriptor, field: FieldDescriptor, depth: int, stack: tuple[str, ...]) -> str:
        """Type text of one field, cutting recursion at the deepest AnyValue level."""
        if field.type == FieldDescriptor.TYPE_ENUM:
            enum = field.enum_type
            assert enum is not None
            self.enums[enum.full_name] = enum
            return _flat_name(enum.full_name, 0)
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            sub = field.message_type
            assert sub is not None
            if owner.full_name == RECURSIVE_ROOT and depth >= self.max_value_depth and self._leads_to_root(sub):
                # Wire-compatible cut: a length-delimited message read as opaque bytes.
                return "bytes"
            return self.message(sub, depth, (*stack, owner.full_name))
        return _SCALAR_TYPES[field.type]

    def enum_blocks(self) -> Iterable[str]:
        """Emit every referenced enum once."""
        for full_name in sorted(self.enums):
            enum = self.enums[full_name]
            body = "\n".join(f"  {v.name} = {v.number};" for v in enum.values)
            # Enum value names are scoped to the package in proto3; prefixing is unnecessary
            # because OTLP already prefixes them (SPAN_KIND_..., STATUS_CODE_..., SEVERITY_NUMBER_...).
            yield f"enum {_flat_name(full_name, 0)} {{\n{body}\n}}"


def render_proto(
    include_logs: bool = True, include_metrics: bool = True, max_value_depth: int = MAX_VALUE_DEPTH
) -> str:
    """Return one proto3 file text covering the trace (and logs, and metrics) export requests."""
    renderer = _Renderer(max_value_depth)
    roots: list[Descriptor] = [trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR]
    if include_logs:
        roots.append(logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR)
    if include_metrics:
        # Shared types (Resource, KeyValue, AnyValue levels) are emitted once, under the first root.
        roots.append(metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR)
    for root in roots:
        renderer.message(root, 0, (), extra=f"  uint32 {BODY_INDEX_FIELD_NAME} = {BODY_INDEX_FIELD_NUMBER};")
    parts = ['syntax = "proto3";', f"package {PROTO_PACKAGE};"]
    parts.extend(renderer.enum_blocks())
    parts.extend(renderer.blocks)
    return "\n\n".join(parts) + "\n"
