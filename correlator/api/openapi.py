"""The OpenAPI document of the app, generated without opening a store."""

from __future__ import annotations

from typing import Any, cast

from correlator.api.app import create_app
from correlator.api.state import AppState


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document; routes do not touch the state to describe themselves."""
    return create_app(cast(AppState, None)).openapi()
