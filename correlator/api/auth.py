"""Bearer tokens: `read` for GET, `write` for everything else; no tokens configured means no auth."""

from __future__ import annotations

import hmac

from correlator.errors import Forbidden, Unauthorized

SCOPES = {"read": 1, "write": 2}


class TokenAuth:
    """Checks an Authorization header against the configured tokens."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = tokens

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def check(self, authorization: str | None, needed: str) -> None:
        """Raise 401 for a missing or unknown token, 403 for a token whose scope is too small."""
        if not self._tokens:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected an 'Authorization: Bearer <token>' header")
        scope = self._scope_of(token.strip())
        if scope is None:
            raise Unauthorized("the bearer token is not valid")
        if SCOPES[scope] < SCOPES[needed]:
            raise Forbidden(f"this route needs a {needed} token; the token given has scope {scope}")

    def _scope_of(self, token: str) -> str | None:
        found = None
        # Compare against every token in constant time, so timing does not reveal a prefix.
        for known, scope in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = scope
        return found

    @staticmethod
    def needed_scope(method: str) -> str:
        """GET and HEAD read; everything else writes."""
        return "read" if method.upper() in ("GET", "HEAD") else "write"
