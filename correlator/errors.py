"""The one error tree of the correlator; the API turns each into its HTTP status.

CorrelatorError (500)
├── BadRequest (400)
│   └── UndecodableBody (400)
├── Unauthorized (401)
├── Forbidden (403)
├── NotFound (404)
├── Conflict (409)
├── PayloadTooLarge (413)
├── UnsupportedMediaType (415)
├── Overloaded (503, with Retry-After)
└── StoreError (503)
    ├── StoreLocked (the embedded data directory is held by another process)
    └── StoreUnavailable
"""

from __future__ import annotations


class CorrelatorError(Exception):
    """Base of every error the correlator raises on purpose; carries an HTTP status and a type name."""

    status_code = 500
    error_type = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CorrelatorError):
    status_code = 400
    error_type = "bad_request"


class UndecodableBody(BadRequest):
    error_type = "undecodable_body"


class Unauthorized(CorrelatorError):
    status_code = 401
    error_type = "unauthorized"


class Forbidden(CorrelatorError):
    status_code = 403
    error_type = "forbidden"


class NotFound(CorrelatorError):
    status_code = 404
    error_type = "not_found"


class Conflict(CorrelatorError):
    status_code = 409
    error_type = "conflict"


class PayloadTooLarge(CorrelatorError):
    status_code = 413
    error_type = "payload_too_large"


class UnsupportedMediaType(CorrelatorError):
    status_code = 415
    error_type = "unsupported_media_type"


class Overloaded(CorrelatorError):
    status_code = 503
    error_type = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreError(CorrelatorError):
    status_code = 503
    error_type = "store_error"


class StoreLocked(StoreError):
    error_type = "store_locked"

    def __init__(self, data_dir: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"the store {data_dir} is in use by {holder}; only one process may open an embedded store. "
            "Stop that process, or talk to it over HTTP (the CLI does), or use another data directory "
            "(CORRELATOR_CLICKHOUSE_DSN=chdb:///other/dir)"
        )
        self.data_dir = data_dir
        self.pid = pid


class StoreUnavailable(StoreError):
    error_type = "store_unavailable"
