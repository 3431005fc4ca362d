"""The simulated Prometheus: windowed, delayed demand as the router exports it.

The planner must be tested on what it would really see, not on the truth:
arrival counts, output tokens, the prompt-length histogram and the useful
and late tokens the replicas produced are kept per second, and a snapshot
sums the window that ends one scrape delay ago (five minutes for attainment,
which needs more tokens than a rate does to be meaningful).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

from weir.planner.types import MIX_BOUNDS, MIX_TOP_BOUND, MixBucket, PoolObservation, Snapshot

ATTAINMENT_WINDOW_S = 300.0


class Telemetry:
    """Per-second counters of what the router saw."""

    def __init__(self, origin_s: float, window_s: float, delay_s: float) -> None:
        self.origin = math.floor(origin_s)
        self.window_s = window_s
        self.delay_s = delay_s
        self.seconds: list[list[tuple[int, int, int, int]]] = []
        self.hosted: list[list[float]] = []
        self.local: list[list[float]] = []

    def _slot(self, now: float) -> int:
        index = int(now - self.origin)
        while len(self.seconds) <= index:
            self.seconds.append([])
            self.hosted.append([0.0, 0.0])
            self.local.append([0.0, 0.0])
        return index

    def arrival(
        self, now: float, input_tokens: int, prefill_tokens: int, output_tokens: int
    ) -> None:
        """A request reached the router."""
        bucket = bisect.bisect_left(MIX_BOUNDS, prefill_tokens)
        self.seconds[self._slot(now)].append((bucket, input_tokens, prefill_tokens, output_tokens))

    def hosted_sent(self, now: float, input_tokens: int, cached_tokens: int) -> None:
        """A request went to the hosted endpoint."""
        slot = self.hosted[self._slot(now)]
        slot[0] += input_tokens
        slot[1] += cached_tokens

    def local_done(self, now: float, output_tokens: int, useful: bool) -> None:
        """A replica finished a request (the router counts useful and late tokens)."""
        slot = self.local[self._slot(now)]
        slot[0] += output_tokens if useful else 0
        slot[1] += output_tokens

    def _local_attainment(self, end: float) -> tuple[float | None, float]:
        lo = max(0, math.ceil(end - ATTAINMENT_WINDOW_S - self.origin))
        hi = max(0, min(len(self.local), math.ceil(end - self.origin)))
        useful = sum(self.local[i][0] for i in range(lo, hi))
        total = sum(self.local[i][1] for i in range(lo, hi))
        return (useful / total if total > 0 else None), total

    def snapshot(self, now: float, pools: Mapping[str, PoolObservation]) -> Snapshot:
        """What a PromQL range query over the window ending `delay` ago returns."""
        end = now - self.delay_s
        start = end - self.window_s
        lo = max(0, math.ceil(start - self.origin))
        hi = max(0, min(len(self.seconds), math.ceil(end - self.origin)))
        sums: dict[int, list[float]] = {}
        requests = 0
        output = 0.0
        hosted_in = hosted_cached = 0.0
        for index in range(lo, hi):
            for bucket, inp, pre, out in self.seconds[index]:
                row = sums.setdefault(bucket, [0.0, 0.0, 0.0, 0.0])
                row[0] += 1
                row[1] += inp
                row[2] += pre
                row[3] += out
                requests += 1
                output += out
            hosted_in += self.hosted[index][0]
            hosted_cached += self.hosted[index][1]
        mix = tuple(
            MixBucket(min(MIX_BOUNDS[b], MIX_TOP_BOUND), row[0], row[1], row[2], row[3])
            for b, row in sorted(sums.items())
        )
        span = max(1.0, min(self.window_s, end - self.origin))
        local_useful, local_tokens = self._local_attainment(end)
        return Snapshot(
            observed_at_s=max(0.0, end),
            window_s=span,
            arrival_rate_rps=requests / span,
            output_tokens_per_s=output / span,
            mix=mix,
            pools=dict(pools),
            hosted_cached_fraction=hosted_cached / hosted_in if hosted_in > 0 else 0.0,
            local_useful_fraction=local_useful,
            local_output_tokens=local_tokens,
        )
