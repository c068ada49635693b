"""Typed access to a webhook's JSON, naming the field path of whatever is missing or mistyped."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from correlator.errors import BadRequest, UndecodableBody
from correlator.events.times import parse_instant

Body = bytes | Mapping[str, Any]


def load_object(body: Body, *, source: str) -> Mapping[str, Any]:
    """The webhook body as a JSON object: raw bytes are decoded, an already parsed mapping is taken as is."""
    if isinstance(body, Mapping):
        return body
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested past Python's limit
        raise UndecodableBody(f"{source}: the body is not valid JSON: {e}") from None
    if has_lone_surrogate(document):
        raise UndecodableBody(f"{source}: the body is not valid JSON: a string holds a lone surrogate like \\ud800")
    if not isinstance(document, dict):
        raise BadRequest(f"{source}: expected a JSON object, got {kind_of(document)}")
    return document


def has_lone_surrogate(document: Any) -> bool:
    """Whether decoded JSON holds a string with a lone UTF-16 surrogate (an escape like \\ud800 without its pair):
    Python decodes one, but no UTF-8 text holds it, so storing it would fail."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def kind_of(value: object) -> str:
    """A JSON value's kind as an error message says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


class Fields:
    """One JSON object of a payload with its path, so errors read 'github deployment: missing deployment.sha'."""

    __slots__ = ("data", "path", "source")

    def __init__(self, data: Mapping[str, Any], *, source: str, path: str = "") -> None:
        self.data = data
        self.source = source
        self.path = path

    def where(self, key: str) -> str:
        """The full path of one of this object's keys."""
        return f"{self.path}.{key}" if self.path else key

    def missing(self, key: str) -> BadRequest:
        """The error for a required field that is absent, null or empty."""
        return BadRequest(f"{self.source}: missing {self.where(key)}")

    def mistyped(self, key: str, expected: str, value: object) -> BadRequest:
        """The error for a field of the wrong JSON type."""
        return BadRequest(f"{self.source}: {self.where(key)}: expected {expected}, got {kind_of(value)}")

    def optional_child(self, key: str) -> Fields | None:
        """A nested object, or None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.mistyped(key, "an object", value)
        return Fields(value, source=self.source, path=self.where(key))

    def child(self, key: str) -> Fields:
        """A nested object that must be there."""
        found = self.optional_child(key)
        if found is None:
            raise self.missing(key)
        return found

    def optional_text(self, key: str) -> str | None:
        """A string, or None when absent, null or empty (the API never keeps "" for absent)."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.mistyped(key, "a string", value)
        return value.strip() or None

    def text(self, key: str) -> str:
        """A non-empty string that must be there."""
        found = self.optional_text(key)
        if found is None:
            raise self.missing(key)
        return found

    def optional_ident(self, key: str) -> str | None:
        """An id that platforms send as a number or a string, as a string."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.mistyped(key, "a number or a string", value)
        return str(value).strip() or None

    def ident(self, key: str) -> str:
        """An id that must be there."""
        found = self.optional_ident(key)
        if found is None:
            raise self.missing(key)
        return found

    def optional_bool(self, key: str) -> bool | None:
        """A boolean, or None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.mistyped(key, "a boolean", value)
        return value

    def items(self, key: str) -> list[Any]:
        """A list that must be there (it may be empty)."""
        value = self.data.get(key)
        if value is None:
            raise self.missing(key)
        if not isinstance(value, list):
            raise self.mistyped(key, "a list", value)
        return value

    def children(self, key: str) -> list[Fields]:
        """A list of objects that must be there, each with its index in its path."""
        found: list[Fields] = []
        for index, value in enumerate(self.items(key)):
            where = f"{key}[{index}]"
            if not isinstance(value, Mapping):
                raise self.mistyped(where, "an object", value)
            found.append(Fields(value, source=self.source, path=self.where(where)))
        return found

    def texts(self, key: str) -> list[str]:
        """An optional list of strings (absent or null is empty); empty strings are dropped."""
        if self.data.get(key) is None:
            return []
        found: list[str] = []
        for index, value in enumerate(self.items(key)):
            if not isinstance(value, str):
                raise self.mistyped(f"{key}[{index}]", "a string", value)
            if value.strip():
                found.append(value.strip())
        return found

    def string_map(self, key: str) -> dict[str, str]:
        """An optional string-to-string object such as labels (absent is empty); null values are dropped."""
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.mistyped(key, "an object of strings", value)
        found: dict[str, str] = {}
        for name, item in value.items():
            if item is None:
                continue
            if not isinstance(item, str):
                raise self.mistyped(f"{key}.{name}", "a string", item)
            found[str(name)] = item
        return found

    def optional_instant(self, key: str, *, now: datetime) -> datetime | None:
        """An RFC 3339 time as aware UTC; absent, empty or the zero time is None; out of bounds is refused."""
        text = self.optional_text(key)
        if text is None:
            return None
        return parse_instant(text, field=f"{self.source}: {self.where(key)}", now=now)

    def instant(self, key: str, *, now: datetime) -> datetime:
        """A time that must be there (the zero time counts as absent)."""
        found = self.optional_instant(key, now=now)
        if found is None:
            raise self.missing(key)
        return found
