"""Columnar blocks of rows, and the result of mapping one export request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ColumnBlock:
    """Rows for one table, column by column, in the order of `columns`."""

    table: str
    columns: tuple[str, ...]
    data: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data:
            self.data = [[] for _ in self.columns]

    def __len__(self) -> int:
        return len(self.data[0]) if self.data else 0

    def extend(self, other: ColumnBlock) -> None:
        """Append another block of the same table."""
        for mine, theirs in zip(self.data, other.data, strict=True):
            mine.extend(theirs)


@dataclass
class Mapped:
    """What one export request became: blocks per table, and the records accepted and rejected."""

    blocks: dict[str, ColumnBlock]
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        """Count one rejected record, keeping the first few reasons for the partial_success message."""
        self.rejected += 1
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        """The partial_success message: how many were rejected and why."""
        if not self.rejected:
            return ""
        return f"{self.rejected} record(s) rejected: " + "; ".join(self.reasons)


def signed_ns(ns: int) -> int:
    """fixed64 Unix nanoseconds as the exporter writes them to a DateTime64(9): Go's int64(ns), so past 2**63 wraps.

    The engine path does the same (reinterpretAsInt64); the unwrapped value does not fit the column and failed the
    insert of a whole batch.
    """
    return ns - (1 << 64) if ns >= 1 << 63 else ns


def hex_id(raw: bytes) -> str:
    """An id as the exporter writes it: lowercase hex, '' for an empty or all-zero id."""
    return raw.hex() if raw.strip(b"\x00") else ""
