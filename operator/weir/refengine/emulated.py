"""The emulated engine: TensorRT-LLM's API and metrics, a profile's latencies, no model.

Closed-loop tests need dozens of replicas that behave like TensorRT-LLM pods
under load, on two CPU cores. Each request costs one asyncio timer per token
and nothing else: its first token comes after a TTFT and each next one after an
ITL, both drawn from the profile at the current running batch (TTFT at the
request's own prompt length, ITL at the running batch's mean prompt length:
a decode step serves the whole batch) (`timing`). Running and waiting
requests are bounded (`slots`) like the in-flight batch and queue of the
real executor. With `prefix_caching` it also plays a hosted API that caches
prompt prefixes (OpenAI's rule: prompts of at least 1,024 tokens, in
128-token blocks), reporting `cached_tokens` in usage.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from weir.api.profile import EngineProfile
from weir.engines.errors import EngineStoppedError
from weir.refengine.protocol import EngineStats, GenerationRequest, Token
from weir.refengine.slots import SlotPool, Ticket
from weir.refengine.timing import ProfileTiming

_TEXT = b"The quick brown fox jumps over the lazy dog. "


class EmulatedSettings(BaseModel):
    """Limits and behaviour of one emulated replica."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int | None = Field(
        default=None, ge=1, description="Running requests; default: the profile's max_concurrency."
    )
    max_waiting: int = Field(default=1024, ge=0, description="Queued requests before 503.")
    kv_capacity_tokens: int | None = Field(
        default=None,
        ge=1,
        description="KV cache size in tokens, for the utilization gauge; default: the profile's.",
    )
    prefix_caching: bool = Field(default=False, description="Report cached prompt prefixes.")
    cache_min_tokens: int = Field(default=1024, ge=1, description="Shortest cacheable prompt.")
    cache_block_tokens: int = Field(default=128, ge=1, description="Cache granularity, tokens.")
    cache_capacity_blocks: int = Field(default=200_000, ge=1, description="LRU size, blocks.")
    seed: int | None = Field(default=None, description="Seed of the latency draws.")


class PrefixCache:
    """Which prompt prefixes were seen recently, in fixed-size blocks (LRU)."""

    def __init__(self, min_tokens: int, block: int, capacity: int) -> None:
        self._min = min_tokens
        self._block = block
        self._capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()

    def lookup_and_insert(self, ids: tuple[int, ...]) -> int:
        """Cached tokens of this prompt; its blocks are remembered for the next one."""
        if len(ids) < self._min:
            return 0
        cached, leading, h = 0, True, 0
        for end in range(self._block, len(ids) + 1, self._block):
            h = hash((h, ids[end - self._block : end]))
            if leading and h in self._seen:
                cached = end
                self._seen.move_to_end(h)
                continue
            leading = False
            self._seen[h] = None
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return cached


class _EmulatedGeneration:
    def __init__(
        self, engine: EmulatedEngine, request: GenerationRequest, ticket: Ticket, cached: int
    ) -> None:
        self._engine = engine
        self._request = request
        self._ticket = ticket
        self.cached_tokens = cached

    def cancel(self) -> None:
        self._ticket.release()

    def __aiter__(self) -> AsyncIterator[Token]:
        return self._run()

    async def _run(self) -> AsyncIterator[Token]:
        engine, req = self._engine, self._request
        await self._ticket.wait()
        if engine.stopped:
            raise EngineStoppedError("the emulated engine was stopped")
        loop = asyncio.get_running_loop()
        rng, timing, pool = engine.rng, engine.timing, engine.pool
        n_in = len(req.prompt_ids) - self.cached_tokens
        ttft, _ = timing.quantiles(pool.running, n_in)
        deadline = loop.time() + ttft.sample(rng)
        engine.kv_tokens += len(req.prompt_ids)
        held = len(req.prompt_ids)
        engine.batch_inputs += n_in
        engine.batch_requests += 1
        try:
            for i in range(req.max_tokens):
                if i:
                    deadline += timing.quantiles(pool.running, engine.batch_mean_input())[1].sample(
                        rng
                    )
                delay = deadline - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                engine.kv_tokens += 1
                held += 1
                last = i == req.max_tokens - 1
                yield Token(_TEXT[i % len(_TEXT)], "length" if last else None)
        finally:
            engine.kv_tokens -= held
            engine.batch_inputs -= n_in
            engine.batch_requests -= 1
            self._ticket.release()


class EmulatedEngine:
    """An engine whose timing follows a profile; see the module docstring."""

    engine_type = "emulated"

    def __init__(self, profile: EngineProfile, settings: EmulatedSettings | None = None) -> None:
        self.settings = settings or EmulatedSettings()
        self.profile = profile
        self.timing = ProfileTiming(profile)
        max_batch = self.settings.max_batch or self.timing.max_concurrency
        self.pool = SlotPool(max_batch, self.settings.max_waiting)
        self.rng = random.Random(self.settings.seed)
        self.kv_tokens = 0
        # A decode step serves the whole batch, so its time (every running request's
        # ITL) follows the batch's prompt lengths, not each request's own.
        self.batch_inputs = 0
        self.batch_requests = 0
        self.kv_capacity = self.settings.kv_capacity_tokens or profile.kv_cache_tokens or 1_000_000
        self.stopped = False
        s = self.settings
        self._cache = (
            PrefixCache(s.cache_min_tokens, s.cache_block_tokens, s.cache_capacity_blocks)
            if s.prefix_caching
            else None
        )

    def submit(self, request: GenerationRequest) -> _EmulatedGeneration:
        ticket = self.pool.reserve()
        cached = self._cache.lookup_and_insert(request.prompt_ids) if self._cache else 0
        return _EmulatedGeneration(self, request, ticket, cached)

    def batch_mean_input(self) -> int:
        """Mean uncached prompt length of the requests running now."""
        return self.batch_inputs // max(1, self.batch_requests)

    def stats(self) -> EngineStats:
        util = min(1.0, self.kv_tokens / self.kv_capacity)
        return EngineStats(self.pool.running, self.pool.waiting, util)

    async def start(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True
