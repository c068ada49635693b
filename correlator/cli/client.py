"""The CLI's HTTP client of a running correlator: --url/CORRELATOR_URL, --token/CORRELATOR_TOKEN."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """A request the server refused or could not answer, with the server's own message."""


class ApiClient:
    """A thin httpx client that turns the API's error bodies into ClientError."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.url = url

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document."""
        return self._request("GET", path, params={k: v for k, v in (params or {}).items() if v is not None})

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """GET a text document (CSV, Markdown)."""
        response = self._send("GET", path, params={k: v for k, v in (params or {}).items() if v is not None})
        return response.text

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body; returns the JSON answer."""
        return self._request("POST", path, json={k: v for k, v in (body or {}).items() if v is not None})

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ClientError(f"cannot reach the correlator at {self.url}: {e}") from e
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{error['message']} ({response.status_code} {error['type']})"
            except (ValueError, KeyError, TypeError):
                message = f"{response.status_code}: {response.text[:300]}"
            raise ClientError(message)
        return response
