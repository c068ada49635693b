"""Each platform's own proof that a webhook came from it, checked in constant time (API.md, Auth)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from correlator.errors import Unauthorized

# The header that carries each platform's proof; the other webhook sources only send bearer tokens.
PROOF_HEADERS: Mapping[str, str] = {
    "github": "x-hub-signature-256",
    "gitlab": "x-gitlab-token",
    "flux": "x-signature",
    "pagerduty": "x-pagerduty-signature",
}


def _hex_hmac_sha256(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()


def _same(expected: bytes, given: str) -> bool:
    # compare_digest refuses non-ASCII str, and header values may carry any byte: compare bytes.
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "replace"))


def _require(header: str | None, secret: str, *, platform: str, name: str) -> str:
    if not secret:
        # Fail closed: a caller that asks for a check without a secret must not let the request through.
        raise Unauthorized(f"{platform}: no webhook secret is configured to check {name} against")
    if not header or not header.strip():
        raise Unauthorized(f"{platform}: missing the {name} header (a webhook secret is configured)")
    return header


def verify_github(body: bytes, header: str | None, secret: str) -> None:
    """Check X-Hub-Signature-256 (`sha256=` + hex HMAC-SHA256 of the raw body); raises Unauthorized."""
    value = _require(header, secret, platform="github", name="X-Hub-Signature-256")
    algorithm, _, digest = value.strip().partition("=")
    if algorithm.lower() != "sha256" or not _same(_hex_hmac_sha256(secret, body), digest):
        raise Unauthorized("github: X-Hub-Signature-256 does not match the body and the configured secret")


def verify_gitlab(header: str | None, token: str) -> None:
    """Check X-Gitlab-Token against the configured token; raises Unauthorized."""
    value = _require(header, token, platform="gitlab", name="X-Gitlab-Token")
    if not hmac.compare_digest(token.encode(), value.encode("utf-8", "replace")):
        raise Unauthorized("gitlab: X-Gitlab-Token does not match the configured token")


def verify_flux(body: bytes, header: str | None, secret: str) -> None:
    """Check the generic-hmac provider's X-Signature (`sha256=` + hex HMAC-SHA256 of the body); raises Unauthorized."""
    value = _require(header, secret, platform="flux", name="X-Signature")
    algorithm, _, digest = value.strip().partition("=")
    if algorithm.lower() != "sha256" or not _same(_hex_hmac_sha256(secret, body), digest):
        raise Unauthorized("flux: X-Signature does not match the body and the configured secret")


def verify_pagerduty(body: bytes, header: str | None, secret: str) -> None:
    """Check X-PagerDuty-Signature: any of its comma-separated `v1=<hex>` matching is enough; raises Unauthorized."""
    value = _require(header, secret, platform="pagerduty", name="X-PagerDuty-Signature")
    expected = _hex_hmac_sha256(secret, body)
    # Several signatures arrive while PagerDuty rotates its secret; other versions than v1 are not ours to read.
    candidates = [
        digest for version, _, digest in (part.strip().partition("=") for part in value.split(",")) if version == "v1"
    ]
    # Check every candidate, not just until the first match, so the time taken does not say which one matched.
    matches = [_same(expected, digest) for digest in candidates]
    if not any(matches):
        raise Unauthorized(
            "pagerduty: no v1 signature in X-PagerDuty-Signature matches the body and the configured secret"
        )


def verify_webhook(source: str, body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Check the proof of a signed source (github, gitlab, flux, pagerduty) from lower-case headers."""
    header = headers.get(PROOF_HEADERS[source]) if source in PROOF_HEADERS else None
    if source == "github":
        verify_github(body, header, secret)
    elif source == "gitlab":
        verify_gitlab(header, secret)
    elif source == "flux":
        verify_flux(body, header, secret)
    elif source == "pagerduty":
        verify_pagerduty(body, header, secret)
    else:
        raise ValueError(f"{source} webhooks carry no signature of their own; they authenticate with a bearer token")
