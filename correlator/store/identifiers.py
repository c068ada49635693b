"""The one way identifiers (database, table, column names) enter SQL; values always travel as bound parameters."""

from __future__ import annotations

import re

from correlator.errors import BadRequest

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def quote_identifier(name: str) -> str:
    """Quote a database, table or column name for SQL, refusing anything but letters, digits, '_' and '.'."""
    if not _IDENTIFIER.match(name):
        raise BadRequest(f"expected an identifier of letters, digits, '_' and '.', got {name!r}")
    return f"`{name}`"
