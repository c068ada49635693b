"""The order a trace is read in: spans as a tree, depth first, siblings by start time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpanRef:
    """What placing a span needs: its id, its parent's id (None for a root) and its start (any orderable)."""

    span_id: str
    parent_span_id: str | None
    start: int


@dataclass(frozen=True)
class Placed:
    """A span's place in the tree: its index in the input, its depth, and the input index of its tree parent."""

    index: int
    depth: int
    parent: int | None


def tree_order(spans: Sequence[SpanRef]) -> list[Placed]:
    """Spans depth first, siblings by (start, span id); a span id seen twice keeps its first row.

    A span whose parent is not in the trace (not arrived, or dropped by sampling) is an orphan: it hangs under
    the earliest root, so the view still reads as one request; without any root, orphans are roots themselves.
    Spans caught in a parent cycle (bad data) come last, at depth 0, so nothing is ever lost.
    """
    first: dict[str, int] = {}
    for index, span in enumerate(spans):
        first.setdefault(span.span_id, index)
    kept = sorted(first.values(), key=lambda i: (spans[i].start, spans[i].span_id))
    roots = [i for i in kept if spans[i].parent_span_id is None]
    main_root = roots[0] if roots else None
    children: dict[int | None, list[int]] = {}
    for i in kept:
        parent_id = spans[i].parent_span_id
        if parent_id is None:
            parent: int | None = None
        elif parent_id in first and first[parent_id] != i:
            parent = first[parent_id]
        else:
            parent = main_root  # an orphan (or its own parent): under the root, else a root itself
        children.setdefault(parent, []).append(i)

    placed: list[Placed] = []
    seen: set[int] = set()
    stack: list[tuple[int, int, int | None]] = [(i, 0, None) for i in reversed(children.get(None, []))]
    while stack:
        index, depth, parent = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        placed.append(Placed(index, depth, parent))
        stack.extend((child, depth + 1, index) for child in reversed(children.get(index, [])))
    placed.extend(Placed(i, 0, None) for i in kept if i not in seen)
    return placed
