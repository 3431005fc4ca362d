"""A lean HTTP/1.1 client for the router's upstreams: asyncio protocol + httptools parser.

Profiling the router with httpx showed most of its CPU in the client (h11
parsing in Python, anyio layers, pool bookkeeping on every chunk, an import
attempt per request). Upstreams here are few and known (engine pods, one
hosted endpoint) and the router only needs POST with a streamed answer, so
this client does just that: keep-alive connections pooled per host, the
response parsed by httptools (C), body chunks handed to the proxy as they
arrive, at most one timer per response for the idle timeout, reading paused
when the client is slower than the upstream. A pooled connection that turns
out closed before any byte of the answer is retried once on a new one.
Errors are the router's own (`UpstreamError`, `UpstreamTimeoutError`).
Plain `http://` only: engine pods are in-cluster; the hosted endpoint
(https) goes through the httpx client.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

from weir.router.errors import UpstreamError, UpstreamTimeoutError
from weir.router.upstream import Headers, UpstreamResponse

_PAUSE_CHUNKS = 1024
_MAX_IDLE_PER_HOST = 4096


class _Response:
    """One streamed answer (implements `UpstreamResponse`)."""

    __slots__ = (
        "_conn",
        "_waiter",
        "chunks_q",
        "complete",
        "error",
        "headers",
        "sink",
        "status",
    )

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status = 0
        self.headers: Headers = []
        self.chunks_q: collections.deque[bytes] = collections.deque()
        self.complete = False
        self.error: UpstreamError | None = None
        self.sink: Callable[[bytes], bool] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._conn.loop.create_future()
        await self._waiter
        self._waiter = None

    async def chunks(self) -> AsyncIterator[bytes]:
        queue, conn = self.chunks_q, self._conn
        while True:
            if queue:
                data = queue.popleft() if len(queue) == 1 else b"".join(queue)
                queue.clear()
                conn.resume()
                yield data
            elif self.error is not None:
                raise self.error
            elif self.complete:
                return
            else:
                await self._wait()

    async def pump(self, sink: Callable[[bytes], bool]) -> bool:
        """Hand each read to `sink` from the protocol callback itself (no task switch).

        Returns True when the answer is complete, False when `sink` asked to
        pause (the client cannot take more; reading stays paused until the
        caller drains the client and calls `pump` again). Raises on errors.
        """
        queue = self.chunks_q
        if queue:
            data = b"".join(queue)
            queue.clear()
            if not sink(data):
                return False
        self._conn.resume()
        if self.error is None and not self.complete:
            self.sink = sink
            try:
                await self._wait()
            finally:
                self.sink = None
        if self.error is not None:
            raise self.error
        return self.complete

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
        self._conn.finish(self)


class _Conn(asyncio.Protocol):
    """One keep-alive connection to one upstream host."""

    def __init__(self, pool: RawUpstream, key: tuple[str, int], idle_timeout_s: float) -> None:
        self.pool, self.key, self.idle_timeout_s = pool, key, idle_timeout_s
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: _Response | None = None
        self.head_ready: asyncio.Future[None] | None = None
        self.got_bytes = False
        self.closed = False
        self.paused = False
        self.last_data = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError("upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"upstream sent invalid HTTP: {exc}"))
            self.abort()
            return
        response = self.response
        if response is None or not response.chunks_q:
            return
        if response.sink is not None:
            data = b"".join(response.chunks_q)
            response.chunks_q.clear()
            if not response.sink(data) and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
                response.wake()
        else:
            # woken once per read, not per HTTP chunk (a read holds dozens of them)
            response.wake()
            if len(response.chunks_q) > _PAUSE_CHUNKS and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.status = self.parser.get_status_code()
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is not None:
            response.chunks_q.append(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is not None:
            response.complete = True
            response.wake()
        if not self.parser.should_keep_alive():
            self.closed = True

    # used by the pool and the response
    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _fail(self, error: UpstreamError) -> None:
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.set_exception(error)
        response = self.response
        if response is not None and not response.complete and response.error is None:
            response.error = error
            response.wake()

    def _idle_check(self) -> None:
        self.timer = None
        if self.response is None or self.response.complete:
            return
        left = self.last_data + self.idle_timeout_s - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._idle_check)
            return
        self._fail(UpstreamTimeoutError("upstream idle timeout", before_first_token=False))
        self.abort()

    def start(self, payload: bytes) -> _Response:
        assert self.transport is not None
        self.response = _Response(self)
        self.head_ready = self.loop.create_future()
        self.got_bytes = False
        self.last_data = self.loop.time()
        self.timer = self.loop.call_later(self.idle_timeout_s, self._idle_check)
        self.transport.write(payload)
        return self.response

    def finish(self, response: _Response) -> None:
        if self.response is not response:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.response = None
        self.head_ready = None
        if response.complete and not self.closed:
            self.resume()
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class RawUpstream:
    """`Upstream` over pooled raw connections (plain http:// URLs only)."""

    def __init__(self, *, connect_timeout_s: float, idle_timeout_s: float) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._targets: dict[str, tuple[tuple[str, int], bytes]] = {}

    def _target(self, url: str) -> tuple[tuple[str, int], bytes]:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or parts.hostname is None:
                raise UpstreamError(f"only http:// upstreams are served by this client: {url}")
            key = (parts.hostname, parts.port or 80)
            head = f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode()
            found = (key, head)
            if len(self._targets) < 10_000:
                self._targets[url] = found
        return found

    def release(self, conn: _Conn) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) < _MAX_IDLE_PER_HOST:
            idle.append(conn)
        else:
            conn.abort()

    def _pooled(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, key: tuple[str, int]) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, key, self.idle_timeout_s), key[0], key[1]
                )
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"connect to {key[0]}:{key[1]} timed out") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {key[0]}:{key[1]}: {exc.strerror}") from exc
        return conn

    async def open(self, url: str, body: bytes, headers: Headers) -> UpstreamResponse:
        key, head = self._target(url)
        extra = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        payload = b"%scontent-length: %d\r\n%s\r\n%s" % (head, len(body), extra, body)
        for _ in range(2):
            conn = self._pooled(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key)
            response = conn.start(payload)
            try:
                assert conn.head_ready is not None
                await conn.head_ready
            except UpstreamError:
                if reused and not conn.got_bytes:
                    conn.finish(response)
                    continue  # a stale pooled connection: once more on a fresh one
                conn.finish(response)
                raise
            except BaseException:
                conn.finish(response)
                raise
            return response
        raise UpstreamError(f"no usable connection to {key[0]}:{key[1]}")

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
        self._idle.clear()
