"""The profiler: measure an endpoint's capacity curve and write it as an engine profile.

The planner is only as good as the curves it reads, so they are measured the
way the planner uses them: a closed loop of `c` clients, each sending the next
streaming request as soon as the previous one ends, for each concurrency and
request shape. TTFT is send to first content chunk; ITL is the pooled gaps
between content chunks (the emulated engine draws ITL per token, so profiling
it gives its profile back); throughput is content chunks per second over the
level's window. Prompts of an exact token count are built after calibrating
the endpoint's tokenizer and template with two probes. Every request starts
with its own number so that prefix caches cannot shorten prefill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from weir.api.profile import EngineProfile, ProfilePoint
from weir.engines.client import EndpointStatusError, StreamResult, stream_request
from weir.engines.errors import ProfilerError

_UNIT = " hi"
_PROBES = (8, 40)
_MAX_REJECTIONS = 50


class ProfileTarget(BaseModel):
    """What is being measured: copied into the profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="Model name sent in requests and recorded.")
    gpu: str = Field(default="unknown", min_length=1)
    precision: str = Field(default="unknown", min_length=1)
    tensor_parallel: int = Field(default=1, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1, description="Engine batch limit.")


class Sweep(BaseModel):
    """Which levels to run and how many requests each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: tuple[int, ...] = Field(default=(1, 2, 4, 8, 16, 32, 64), min_length=1)
    shapes: tuple[tuple[int, int], ...] = Field(
        default=((128, 128), (1024, 256)), min_length=1, description="(input, output) tokens."
    )
    requests_per_level: int = Field(default=64, ge=1, description="Completed requests, at least.")
    min_rounds: int = Field(default=2, ge=1, description="Requests per client, at least.")
    api: Literal["chat", "completions"] = "completions"
    request_timeout_s: float = Field(default=600.0, gt=0)


QUICK = Sweep(concurrency=(1, 2, 4, 8, 16), shapes=((64, 32),), requests_per_level=16)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        raise ProfilerError("no samples to take a percentile of")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class _Prompts:
    """Builds prompts of a target token count: tokens = overhead + per_unit * units."""

    def __init__(self, overhead: float, per_unit: float) -> None:
        self.overhead = overhead
        self.per_unit = per_unit
        self._counter = 0

    def text(self, units: int) -> str:
        self._counter += 1
        return f"{self._counter % 1_000_000:06d}" + _UNIT * units

    def units_for(self, tokens: int) -> int:
        return max(1, round((tokens - self.overhead) / self.per_unit))


class Profiler:
    """Runs a sweep against one OpenAI-compatible endpoint."""

    def __init__(self, client: httpx.AsyncClient, target: ProfileTarget, sweep: Sweep) -> None:
        self.client = client
        self.target = target
        self.sweep = sweep
        self.path = "/v1/chat/completions" if sweep.api == "chat" else "/v1/completions"
        self._prompts = _Prompts(0.0, 1.0)

    def _body(self, units: int, max_tokens: int) -> dict[str, Any]:
        text = self._prompts.text(units)
        body: dict[str, Any] = {
            "model": self.target.model,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
        }
        if self.sweep.api == "chat":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        return body

    async def calibrate(self) -> None:
        """Fit prompt tokens = overhead + per_unit * units from two probe requests."""
        counts = []
        for units in _PROBES:
            result = await stream_request(self.client, self.path, self._body(units, 1))
            if not result.usage or "prompt_tokens" not in result.usage:
                raise ProfilerError("the endpoint returns no usage with include_usage")
            counts.append(float(result.usage["prompt_tokens"]))
        per_unit = (counts[1] - counts[0]) / (_PROBES[1] - _PROBES[0])
        if per_unit <= 0:
            raise ProfilerError(f"prompt token counts do not grow with the prompt: {counts}")
        self._prompts = _Prompts(counts[0] - per_unit * _PROBES[0], per_unit)

    async def _one(
        self, units: int, output_tokens: int, on_chunk: Callable[[], None] | None = None
    ) -> StreamResult:
        rejections = 0
        while True:
            try:
                body = self._body(units, output_tokens)
                return await stream_request(self.client, self.path, body, on_chunk)
            except EndpointStatusError as exc:
                if exc.status not in (429, 503) or rejections >= _MAX_REJECTIONS:
                    raise
                rejections += 1
                await asyncio.sleep(0.05 * rejections)

    async def measure(
        self, concurrency: int, input_tokens: int, output_tokens: int
    ) -> ProfilePoint:
        """One closed-loop level; requests still in flight at the end are cancelled."""
        units = self._prompts.units_for(input_tokens)
        target = max(self.sweep.requests_per_level, concurrency * self.sweep.min_rounds)
        done: list[StreamResult] = []
        chunks = [0]
        finished = asyncio.Event()

        def count() -> None:
            chunks[0] += 1

        async def client_loop() -> None:
            while not finished.is_set():
                done.append(await self._one(units, output_tokens, count))
                if len(done) >= target:
                    finished.set()

        start = time.perf_counter()
        tasks = [asyncio.create_task(client_loop()) for _ in range(concurrency)]
        waiter = asyncio.create_task(finished.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        elapsed = time.perf_counter() - start
        for task in [waiter, *tasks]:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return _point(concurrency, input_tokens, output_tokens, done, chunks[0] / elapsed)

    async def run(self) -> EngineProfile:
        await self.calibrate()
        points = [
            await self.measure(c, i, o)
            for i, o in self.sweep.shapes
            for c in self.sweep.concurrency
        ]
        return EngineProfile(
            model=self.target.model,
            gpu=self.target.gpu,
            precision=self.target.precision,
            tensor_parallel=self.target.tensor_parallel,
            max_concurrency=self.target.max_concurrency,
            source=self._source(),
            points=tuple(points),
        )

    def _source(self) -> str:
        s = self.sweep
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"measured by `weir profile` against {self.client.base_url} at {when}: "
            f"closed loop of c streaming clients, c in {list(s.concurrency)}, "
            f"(input, output) tokens {[list(x) for x in s.shapes]}, at least "
            f"{s.requests_per_level} requests and {s.min_rounds} per client per level, "
            f"{s.api} API, ignore_eos; TTFT = send to first content chunk, ITL = pooled "
            f"gaps between content chunks, throughput = content chunks/s over the level"
        )


def _point(
    concurrency: int, input_tokens: int, output_tokens: int, done: list[StreamResult], tps: float
) -> ProfilePoint:
    ttfts = [r.ttft for r in done if r.ttft is not None]
    gaps = [g for r in done for g in r.gaps()]
    if not ttfts or not gaps or tps <= 0:
        raise ProfilerError(
            f"no usable answers at concurrency {concurrency}: the endpoint streamed no tokens"
        )
    return ProfilePoint(
        concurrency=concurrency,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ttft_p50_s=round(percentile(ttfts, 50), 6),
        ttft_p95_s=round(percentile(ttfts, 95), 6),
        itl_p50_s=round(percentile(gaps, 50), 6),
        itl_p95_s=round(percentile(gaps, 95), 6),
        output_tokens_per_s=round(tps, 3),
    )


async def profile_endpoint(
    endpoint: str, target: ProfileTarget, sweep: Sweep, api_key: str | None = None
) -> EngineProfile:
    """Profile `endpoint` (base URL without /v1) and return the measured profile."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=max(sweep.concurrency) + 4)
    timeout = httpx.Timeout(sweep.request_timeout_s, connect=10.0)
    async with httpx.AsyncClient(
        base_url=endpoint, headers=headers, limits=limits, timeout=timeout
    ) as client:
        return await Profiler(client, target, sweep).run()


def write_profile(profile: EngineProfile, path: Path) -> None:
    """Write the profile YAML the planner and the emulated engine read."""
    data = profile.model_dump(mode="json", exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100))
