"""Errors of the router, named by what the client (or the router) should do next.

Each error carries the HTTP status, OpenAI error `type` and `code` it maps
to (and the request field at fault, `param`, where there is one), so the
ASGI boundary turns any of them into one OpenAI error object without a
lookup table, and lower-level errors (httpx, json, pydantic, OS) are wrapped
where they occur instead of leaking through the hot path. `code` is always a
short string (the official clients read it as one), never the HTTP status.
"""

from __future__ import annotations

from weir.router.retry import header_value
from weir.serving import error_json


class RouterError(Exception):
    """Base class of every error raised by `weir.router`."""

    status = 500
    error_type = "internal_error"
    code: str | None = "internal_error"
    outcome = "error"  # the `outcome` label when the router answers it itself

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers (Retry-After for the retryable ones)."""
        return {}

    def body(self) -> bytes:
        """The OpenAI error object of this error."""
        return error_json(str(self), self.error_type, self.code, self.param)


class ClientRequestError(RouterError):
    """The request itself is wrong: fix it, do not retry it (4xx)."""

    status = 400
    outcome = "bad_request"
    error_type = "invalid_request_error"
    code = "invalid_value"


class UnauthorizedError(ClientRequestError):
    """Missing or unknown bearer token (401)."""

    status = 401
    outcome = "unauthorized"
    code = "invalid_api_key"


class NotFoundError(ClientRequestError):
    """No such route (404)."""

    status = 404
    outcome = "not_found"
    code = "unknown_url"


class ModelNotFoundError(NotFoundError):
    """The request names a model this deployment does not serve (404 `model_not_found`)."""

    code = "model_not_found"

    def __init__(self, model: str) -> None:
        shown = model if len(model) <= 200 else model[:200] + "..."
        super().__init__(f"The model '{shown}' does not exist", param="model")


class RequestTimeoutError(ClientRequestError):
    """The client did not send its whole body in time (408; the connection is closed)."""

    status = 408
    outcome = "bad_request"
    code = "request_timeout"


class MethodNotAllowedError(ClientRequestError):
    """The route exists but not for this method (405)."""

    status = 405
    outcome = "not_found"
    code = "method_not_allowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class PayloadTooLargeError(ClientRequestError):
    """The request body is over the configured limit (413)."""

    status = 413
    outcome = "too_large"
    code = "request_too_large"


class RetryLaterError(RouterError):
    """Temporary: the same request may succeed later (429/503 with Retry-After)."""

    status = 429
    outcome = "rejected"
    error_type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": header_value(self.retry_after_s)}


class OverloadedError(RetryLaterError):
    """Local replicas full, hosted spill not allowed, queue full or wait too long (429)."""


class NoBackendError(RetryLaterError):
    """No ready local replica and no hosted endpoint to take the request (503)."""

    status = 503
    outcome = "rejected"
    error_type = "service_unavailable"
    code = "service_unavailable"


class UpstreamError(RouterError):
    """An engine pod or the hosted endpoint failed (502/504); temporary."""

    status = 502
    error_type = "upstream_error"
    code: str | None = "upstream_error"

    def __init__(self, message: str, *, before_first_token: bool = True) -> None:
        super().__init__(message)
        self.before_first_token = before_first_token


class UpstreamTimeoutError(UpstreamError):
    """Connect, first-token or idle timeout of the upstream (504)."""

    status = 504
    code = "upstream_timeout"


_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status: the client gets that status and type.

    Its body is never passed on: an endpoint may echo the request (with the
    hosted API key) into its error message. The router's own message names
    the status; the upstream's error `type`, `code` and `param` are kept when
    each is a short identifier (the caller checks), else the type is derived
    from the status and code and param are null. Retry-After is kept, clamped.
    """

    def __init__(
        self,
        status: int,
        upstream_type: str | None = None,
        retry_after_s: float | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(f"upstream answered HTTP {status}")
        self.status = status if 400 <= status <= 599 else 502
        self.error_type = upstream_type or _STATUS_TYPES.get(
            self.status, "upstream_error" if self.status >= 500 else "invalid_request_error"
        )
        self.code = code or ("upstream_error" if self.status >= 500 else None)
        self.param = param
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": header_value(self.retry_after_s)}


class ConfigError(RouterError):
    """The router's settings or policy file are invalid: permanent until fixed."""
