"""The rules every deploy webhook shares: which ref is a tag, short shas, image tags and id parts."""

from __future__ import annotations

import re

from correlator.errors import BadRequest

SHORT_SHA_LENGTH = 7

_HEX = re.compile(r"^[0-9a-fA-F]{7,64}$")
# A tag-like ref: v1.2.3, 1.2.3-rc.1, 2.0.0+build.7, v2, 2024.05.01. Branch names (main, release/1.2) do not match.
_VERSION = re.compile(r"^[vV]?\d+(\.\d+)*([-+][0-9A-Za-z][0-9A-Za-z.+-]*)?$")
# Deploy ids travel in URL paths (GET /api/v1/deploys/{deploy_id}): no slashes, spaces or other separators.
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:@+-]+")


def is_hex_sha(text: str) -> bool:
    """Whether a text looks like a commit or digest hash (7 to 64 hex digits)."""
    return _HEX.match(text) is not None


def short_sha(sha: str) -> str:
    """A commit sha as people write it: its first 7 characters."""
    return sha[:SHORT_SHA_LENGTH]


def tag_name(ref: str | None, *, sha: str | None = None) -> str | None:
    """The tag a git ref names, or None for a branch or a commit.

    A ref names a tag when it is `refs/tags/<tag>`, or when it is not `refs/heads/...`, not the sha (or a prefix
    of it) and reads like a version (`v1.2.3`, `1.4`, `2.0.0-rc.1`). A bare branch name never matches that.
    """
    if not ref:
        return None
    ref = ref.strip()
    if ref.startswith("refs/tags/"):
        return ref.removeprefix("refs/tags/") or None
    if ref.startswith("refs/"):
        return None
    if sha and is_hex_sha(ref) and sha.lower().startswith(ref.lower()):
        return None
    return ref if _VERSION.match(ref) else None


def version_from_revision(revision: str) -> str:
    """A version from a bare revision: the short sha when it is a hash, else the revision (a chart version)."""
    return short_sha(revision) if is_hex_sha(revision) else revision


def image_tag(image: str) -> tuple[str, str | None]:
    """An image reference's last path segment and its tag: `ghcr.io/acme/checkout:1.4@sha256:..` -> (checkout, 1.4)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    repository, sep, tag = name.partition(":")
    return repository, (tag or None) if sep else None


def id_part(text: str) -> str:
    """A text made safe inside a deploy id (slashes and spaces become '-')."""
    return _ID_UNSAFE.sub("-", text).strip("-")


def require_deploy(service: str | None, version: str | None, *, source: str) -> tuple[str, str]:
    """The service and version every deploy needs, or a 400 saying which is missing."""
    if service and version:
        return service, version
    absent = " and ".join(name for name, value in (("service", service), ("version", version)) if not value)
    raise BadRequest(f"{source}: a deploy needs a service and a version; this payload names no {absent}")
