"""The local engine pods the router may send to, with their load and drain state.

Discovery (EndpointSlices in a cluster, a fixed list in tests and benchmarks)
only reports endpoints; this module keeps the live view the admission
policy needs: in-flight requests per replica, whether it may take new work,
and a recent TTFT per replica for the SLO guard. An endpoint that turns
not-ready or terminating, or disappears, stops getting new requests at once
but keeps its open streams until they finish; it is forgotten when its last
stream ends. The operator may also name pods in the policy's `drainingPods`
(at a spot notice, before it deletes them): the same rule applies.
Waiters for a local slot are woken when any slot frees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from weir.planner.admission import ReplicaLoad

_TTFT_MEMORY_S = 5.0  # a replica's TTFT sample older than this no longer guards it
_EWMA = 0.3


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One engine pod as discovery sees it."""

    id: str
    url: str
    pool: str
    ready: bool = True
    draining: bool = False
    pod: str | None = None


class Discovery(Protocol):
    """Reports the current endpoint set whenever it changes, until cancelled."""

    async def run(self, publish: Callable[[list[Endpoint]], None]) -> None: ...


@dataclass(eq=False, slots=True)
class Backend:
    """A replica the router knows, with its live load."""

    id: str
    url: str
    pool: str
    pod: str | None = None
    routable: bool = True
    gone: bool = False
    in_flight: int = 0
    ttft_s: float = 0.0
    ttft_at: float = -1e9

    def note_ttft(self, ttft_s: float, now_s: float) -> None:
        fresh = now_s - self.ttft_at < _TTFT_MEMORY_S
        self.ttft_s = ttft_s if not fresh else self.ttft_s + _EWMA * (ttft_s - self.ttft_s)
        self.ttft_at = now_s

    def recent_ttft(self, now_s: float) -> float | None:
        return self.ttft_s if now_s - self.ttft_at < _TTFT_MEMORY_S else None


class BackendSet:
    """The replicas, keyed by endpoint id; updated by discovery, used by admission."""

    def __init__(self) -> None:
        self.by_id: dict[str, Backend] = {}
        self.draining_pods: frozenset[str] = frozenset()  # marked by the operator's policy
        self._freed = asyncio.Event()
        self.version = 0

    def update(self, endpoints: Iterable[Endpoint]) -> None:
        """Apply a full endpoint set from discovery."""
        seen: set[str] = set()
        for ep in endpoints:
            seen.add(ep.id)
            backend = self.by_id.get(ep.id)
            if backend is None:
                backend = self.by_id[ep.id] = Backend(ep.id, ep.url, ep.pool)
            backend.url, backend.pool, backend.pod, backend.gone = ep.url, ep.pool, ep.pod, False
            backend.routable = ep.ready and not ep.draining
        for bid, backend in list(self.by_id.items()):
            if bid not in seen:
                backend.routable, backend.gone = False, True
                if backend.in_flight == 0:
                    del self.by_id[bid]
        self.version += 1
        self._wake()

    def loads(self, now_s: float, ttft_target_s: float | None) -> list[ReplicaLoad]:
        """The admission policy's view; a replica over the TTFT target counts as not accepting."""
        out = []
        for b in self.by_id.values():
            accepting = self.accepts(b)
            if accepting and ttft_target_s is not None:
                recent = b.recent_ttft(now_s)
                accepting = recent is None or recent <= ttft_target_s
            out.append(ReplicaLoad(b.id, b.pool, b.in_flight, accepting))
        return out

    def accepts(self, backend: Backend) -> bool:
        """Ready, not terminating, not marked draining by the policy."""
        return backend.routable and (backend.pod is None or backend.pod not in self.draining_pods)

    def mark_draining(self, pods: frozenset[str]) -> None:
        """The policy's drainingPods: no new request to them; their streams finish."""
        self.draining_pods = pods
        self._wake()

    def pools(self) -> set[str]:
        return {b.pool for b in self.by_id.values()}

    def counts(self) -> tuple[int, int]:
        """(routable, draining) replicas."""
        routable = sum(1 for b in self.by_id.values() if self.accepts(b))
        return routable, len(self.by_id) - routable

    def acquire(self, backend: Backend) -> None:
        backend.in_flight += 1

    def release(self, backend: Backend) -> None:
        backend.in_flight -= 1
        if backend.gone and backend.in_flight == 0:
            self.by_id.pop(backend.id, None)
        self._wake()

    def _wake(self) -> None:
        self._freed.set()
        self._freed = asyncio.Event()

    def slot_freed(self) -> Awaitable[bool]:
        """Completes when a slot frees or the endpoint set changes."""
        return self._freed.wait()


class StaticDiscovery:
    """A fixed endpoint list (tests, benchmarks, a router outside a cluster); `set` changes it."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self._endpoints = list(endpoints)
        self._publish: Callable[[list[Endpoint]], None] | None = None

    def set(self, endpoints: Iterable[Endpoint]) -> None:
        self._endpoints = list(endpoints)
        if self._publish is not None:
            self._publish(list(self._endpoints))

    async def run(self, publish: Callable[[list[Endpoint]], None]) -> None:
        self._publish = publish
        publish(list(self._endpoints))
        await asyncio.Event().wait()


def parse_backend(spec: str) -> Endpoint:
    """`URL` or `POOL=URL` from the command line."""
    pool, url = spec.split("=", 1) if "=" in spec.split("://", 1)[0] else ("", spec)
    url = url.rstrip("/")
    return Endpoint(id=url, url=url, pool=pool or "default")
