"""The HTTP/1.1 server layer of weir's own servers (router, reference engines), hardened.

uvicorn with httptools parses fast but trusts its peers: it has no limit on
the size of a request head, no deadline for reading one (a connection that
sends nothing, or a byte a minute, is kept forever), and it answers
malformed requests and overload in plain text. Both the router (facing any
in-cluster client) and the engines (which also play the hosted API in the
lab) need those bounds, so they share this one protocol class:

- a request head larger than `max_header_bytes` is answered 431 and closed
  (counted as it arrives, and exactly once it is parsed);
- a request that is not HTTP/1.0 or 1.1 (an HTTP/0.9 line) is answered 505;
- a head not complete `header_timeout_s` after its first byte (or after the
  connection opened) is answered 408 and closed (slowloris, HTTP/0.9 lines,
  idle connections that never send);
- between requests the keep-alive timeout (uvicorn's own) closes idle
  connections;
- beyond `max_connections` open connections a new one is answered 503 with
  Retry-After and closed at once;
- every answer of this layer is an OpenAI-style JSON error object.

The body of a request is read by the application, which bounds its size and
its read time itself (a body shorter than its Content-Length); this layer
bounds what happens before the application sees the request.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}
_CODES = {
    400: "invalid_http",
    408: "request_timeout",
    431: "request_head_too_large",
    503: "too_many_connections",
    505: "http_version_not_supported",
}
_VERSIONS = frozenset(("1.0", "1.1"))


class ServerLimits(BaseModel):
    """Bounds on what a client may hold of a server before its request is read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_header_bytes: int = Field(
        default=32 << 10,
        ge=1024,
        le=1 << 20,
        description="Request line plus headers, bytes (431 above). 32 KiB holds any "
        "real client's head; Node and Go default to 16 KiB and 1 MiB.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="From a connection's opening (or a request's first byte) to the end "
        "of its head, s (408 after).",
    )
    keep_alive_timeout_s: int = Field(
        default=30, ge=1, le=3600, description="Idle time between requests, whole s."
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        le=1_000_000,
        description="Open client connections; a new one beyond is answered 503.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Reading a request's whole body once its head is in, s (408 after).",
    )


def error_object(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object, as every weir server writes it: all four members, always
    present; `code` a short string (`model_not_found`) or null, never the HTTP status
    (the official clients read `code` as a string); `param` the request field at fault."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_json(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> bytes:
    """`error_object`, encoded."""
    return json.dumps(error_object(message, error_type, code, param)).encode()


def model_object(name: str) -> dict[str, Any]:
    """OpenAI's model object for a served name (`/v1/models` and `/v1/models/{id}`)."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "weir"}


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


def request_id(given: bytes | None) -> bytes:
    """The `x-request-id` to answer with: the client's when it is a sane id (at most 128
    bytes of id characters), else a new random one. Both weir servers echo it, so one
    id names a request in the client's, the router's and the engine's logs."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex().encode()


def _response(status: int, message: str, error_type: str, extra: bytes = b"") -> bytes:
    body = error_json(message, error_type, _CODES[status])
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, _REASONS[status])
    return b"%s%scontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        head,
        extra,
        len(body),
        body,
    )


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of `ServerLimits` (see the module)."""

    limits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            retry = b"retry-after: 1\r\n"
            self._refuse(503, "too many open connections", "service_unavailable", retry)
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(
                431,
                f"request head larger than {self.limits.max_header_bytes} bytes",
                "invalid_request_error",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        size, self._head_size = self._head_size, 0
        if self._refused:
            return
        if size > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            self._refuse(431, f"request head larger than {limit} bytes", "invalid_request_error")
        elif self.parser.get_http_version() not in _VERSIONS:
            self._refuse(505, "HTTP/1.1 (or 1.0) only", "invalid_request_error")
        else:
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "invalid HTTP request", "invalid_request_error")

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes:
            self._refuse(408, "request head not received in time", "invalid_request_error")
        else:
            self.transport.close()  # nothing asked, nothing to answer

    def _refuse(self, status: int, message: str, error_type: str, extra: bytes = b"") -> None:
        self._refused = True
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_response(status, message, error_type, extra))
            self.transport.close()


def protocol_class(limits: ServerLimits) -> type[GuardedProtocol]:
    """A protocol class bound to `limits` (uvicorn instantiates it per connection)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


def uvicorn_config(app: Any, limits: ServerLimits, **extra: Any) -> uvicorn.Config:
    """uvicorn settings shared by weir's servers: guarded protocol, quiet, no lifespan."""
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": 1,
        "backlog": 4096,
        **extra,
    }
    return uvicorn.Config(
        app, http=protocol_class(limits), timeout_keep_alive=limits.keep_alive_timeout_s, **options
    )
