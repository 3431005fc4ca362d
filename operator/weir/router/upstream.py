"""The narrow interface the proxy needs from an HTTP client, and the httpx one.

`Upstream` opens a POST and returns a response whose body is still
streaming; the proxy never sees a third-party exception, only the router's
own (`UpstreamError`, `UpstreamTimeoutError`). Two implementations: the lean
`weir.router.rawhttp` client for the engine pods (plain http, the hot path:
profiling showed httpx costing 5-16 ms of CPU per stream there), and the
pooled `httpx.AsyncClient` here for https hosted endpoints, with
`send(..., stream=True)` so bytes are forwarded as they arrive and its read
timeout as the idle timeout (longest gap between two chunks). The
first-token timeout is the proxy's, since it spans connect, head and first
event. `SchemeUpstream` picks one by URL scheme.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import httpx

from weir.router.errors import UpstreamError, UpstreamTimeoutError

Headers = list[tuple[bytes, bytes]]


class UpstreamResponse(Protocol):
    """An upstream answer whose body is still streaming."""

    status: int
    headers: Headers

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self, limit: int) -> bytes: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """Opens POST requests to an upstream base URL."""

    async def open(self, url: str, body: bytes, headers: Headers) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers: Headers = list(resp.headers.raw)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("upstream idle timeout", before_first_token=False) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream stream broke: {type(exc).__name__}") from exc

    async def read(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UpstreamError(f"upstream answer larger than {limit} bytes")
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxUpstream:
    """Pooled keep-alive HTTP/1.1 client for every upstream of one router."""

    def __init__(self, *, connect_timeout_s: float, idle_timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=idle_timeout_s, write=idle_timeout_s, pool=None
            ),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=2048, keepalive_expiry=30.0
            ),
            trust_env=False,
        )

    async def open(self, url: str, body: bytes, headers: Headers) -> UpstreamResponse:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise UpstreamTimeoutError("upstream connect timeout") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("upstream answer timeout") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {type(exc).__name__}") from exc
        return _HttpxResponse(resp)

    async def aclose(self) -> None:
        await self._client.aclose()


class SchemeUpstream:
    """Plain-http upstreams (engine pods) on the lean client, https (hosted) on httpx."""

    def __init__(self, plain: Upstream, tls: Upstream) -> None:
        self.plain, self.tls = plain, tls

    async def open(self, url: str, body: bytes, headers: Headers) -> UpstreamResponse:
        client = self.plain if url.startswith("http://") else self.tls
        return await client.open(url, body, headers)

    async def aclose(self) -> None:
        await self.plain.aclose()
        await self.tls.aclose()
