"""Errors of the router, named by what the client (or the router) should do next.

Each error carries the HTTP status and OpenAI error `type` it maps to, so the
ASGI boundary turns any of them into one JSON answer without a lookup table,
and lower-level errors (httpx, json, pydantic, OS) are wrapped where they
occur instead of leaking through the hot path.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base class of every error raised by `weir.router`."""

    status = 500
    error_type = "internal_error"
    outcome = "error"  # the `outcome` label when the router answers it itself

    def headers(self) -> dict[str, str]:
        """Extra response headers (Retry-After for the retryable ones)."""
        return {}


class ClientRequestError(RouterError):
    """The request itself is wrong: fix it, do not retry it (4xx)."""

    status = 400
    outcome = "bad_request"
    error_type = "invalid_request_error"


class UnauthorizedError(ClientRequestError):
    """Missing or unknown bearer token (401)."""

    status = 401
    outcome = "unauthorized"


class NotFoundError(ClientRequestError):
    """No such route (404)."""

    status = 404
    outcome = "not_found"


class MethodNotAllowedError(ClientRequestError):
    """The route exists but not for this method (405)."""

    status = 405
    outcome = "not_found"


class PayloadTooLargeError(ClientRequestError):
    """The request body is over the configured limit (413)."""

    status = 413
    outcome = "too_large"


class RetryLaterError(RouterError):
    """Temporary: the same request may succeed later (429/503 with Retry-After)."""

    status = 429
    outcome = "rejected"
    error_type = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.499)))}


class OverloadedError(RetryLaterError):
    """Local replicas full, hosted spill not allowed, queue full or wait too long (429)."""


class NoBackendError(RetryLaterError):
    """No ready local replica and no hosted endpoint to take the request (503)."""

    status = 503
    outcome = "rejected"
    error_type = "service_unavailable"


class UpstreamError(RouterError):
    """An engine pod or the hosted endpoint failed (502/504); temporary."""

    status = 502
    error_type = "upstream_error"

    def __init__(self, message: str, *, before_first_token: bool = True) -> None:
        super().__init__(message)
        self.before_first_token = before_first_token


class UpstreamTimeoutError(UpstreamError):
    """Connect, first-token or idle timeout of the upstream (504)."""

    status = 504


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; its body is passed on."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"upstream answered HTTP {status}")
        self.status = status
        self.body = body
        self.upstream_headers = headers

    def headers(self) -> dict[str, str]:
        return self.upstream_headers


class ConfigError(RouterError):
    """The router's settings or policy file are invalid: permanent until fixed."""
