"""The simulated Prometheus: windowed, delayed demand as the router exports it.

The planner must be tested on what it would really see, not on the truth:
arrival counts, prompt and output tokens, the prompt-length histogram and the
useful and late tokens the replicas produced are kept per second; a cycle
reads the window that ends one scrape delay ago (five minutes for attainment,
which needs more tokens than a rate does to be meaningful) into the same
metrics snapshot the operator's Prometheus source returns, and the planner's
view is built from it by the operator's own function (`weir.metrics.observe`),
so the prompt mix is estimated from the histogram exactly as in a cluster.

The engines' own series (`trtllm_*`: time per output token, running requests,
completions, end-to-end latency) are kept per pool too, as the replicas of the
simulated engine produce them, so the planner learns its pools' real speed
(`weir.planner.learn`) in the simulator the way it does on a cluster: from the
engine that ran, not from the profile it plans with.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

from weir.metrics.observe import observe
from weir.metrics.snapshot import ATTAINMENT_WINDOW_S, DeploymentMetrics, MetricsSnapshot
from weir.planner.types import MIX_BOUNDS, EngineWindow, PoolObservation, Snapshot

SIMULATED = ("sim", "deployment")  # the one deployment a run simulates, as a metrics key


class Telemetry:
    """Per-second counters of what the router saw."""

    def __init__(self, origin_s: float, window_s: float, delay_s: float) -> None:
        self.origin = math.floor(origin_s)
        self.window_s = window_s
        self.delay_s = delay_s
        self.seconds: list[list[tuple[int, int, int, int]]] = []
        self.hosted: list[list[float]] = []
        self.local: list[list[float]] = []
        # pool -> second -> [tpot_sum, tpot_count, requests, tokens, e2e_sum]
        self.completions: dict[str, dict[int, list[float]]] = {}
        # (end of span, pool, replica, seconds up, running-request seconds), time-ordered
        self.spans: list[tuple[float, str, int, float, float]] = []

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
        self.local_tokens(now, output_tokens, output_tokens if useful else 0)

    def local_tokens(self, now: float, output_tokens: float, useful_tokens: float) -> None:
        """Tokens a replica streamed for one attempt, of which `useful_tokens` were useful
        (a request judged per token, an abandoned or duplicate attempt)."""
        slot = self.local[self._slot(now)]
        slot[0] += useful_tokens
        slot[1] += output_tokens

    def engine_span(self, now: float, pool: str, rid: int, up_s: float, busy_s: float) -> None:
        """A replica was up for `up_s` until `now` with `busy_s` running-request seconds
        (the samples `avg_over_time(trtllm_num_requests_running)` averages)."""
        if up_s > 0:
            self.spans.append((now, pool, rid, up_s, busy_s))

    def engine_done(
        self, now: float, pool: str, output_tokens: int, tpot_s: float | None, e2e_s: float
    ) -> None:
        """A replica of `pool` finished a request (the engine's own histograms and counters)."""
        slot = self.completions.setdefault(pool, {}).setdefault(int(now - self.origin), [0.0] * 5)
        if tpot_s is not None:
            slot[0] += tpot_s
            slot[1] += 1
        slot[2] += 1
        slot[3] += output_tokens
        slot[4] += e2e_s

    def _engines(
        self, start: float, end: float, span: float
    ) -> tuple[tuple[str, EngineWindow], ...]:
        """Per pool, what the operator's `engines` query would return over [start, end)."""
        up: dict[tuple[str, int], list[float]] = {}
        lo = bisect.bisect_right(self.spans, (start, chr(0x10FFFF)))
        for at, pool, rid, up_s, busy_s in self.spans[lo:]:
            if at > end:
                break
            entry = up.setdefault((pool, rid), [0.0, 0.0])
            entry[0] += up_s
            entry[1] += busy_s
        first = max(0, math.ceil(start - self.origin))
        last = math.ceil(end - self.origin)
        out = []
        for pool in sorted({pool for pool, _ in up}):
            replicas = [v for (p, _), v in up.items() if p == pool]
            sums = [0.0] * 5
            done = self.completions.get(pool, {})
            for second in range(first, last):
                slot = done.get(second)
                if slot is not None:
                    sums = [a + b for a, b in zip(sums, slot, strict=True)]
            if not sums[1]:
                continue
            count = len(replicas)
            window = EngineWindow(
                replicas=float(count),
                running=sum(busy / seconds for seconds, busy in replicas) / count,
                tpot_s=sums[0] / sums[1],
                requests_per_s=sums[2] / span / count,
                output_tokens=sums[3],
                e2e_s=sums[4] / sums[2],
            )
            out.append((pool, window))
        return tuple(out)

    def _local_tokens(self, end: float) -> tuple[float, float]:
        """(useful, all) tokens the replicas generated over the attainment window."""
        lo = max(0, math.ceil(end - ATTAINMENT_WINDOW_S - self.origin))
        hi = max(0, min(len(self.local), math.ceil(end - self.origin)))
        useful = sum(self.local[i][0] for i in range(lo, hi))
        total = sum(self.local[i][1] for i in range(lo, hi))
        return useful, total

    def metrics(self, now: float) -> MetricsSnapshot:
        """What the operator's query set over the window ending `delay` ago returns.

        Counters become rates over the window, the prompt lengths a cumulative
        histogram on the router's bucket bounds, the local replicas' tokens an
        increase over the attainment window: the same quantities, in the same
        shape, that `weir.metrics.source` reads from Prometheus.
        """
        end = now - self.delay_s
        start = end - self.window_s
        lo = max(0, math.ceil(start - self.origin))
        hi = max(0, min(len(self.seconds), math.ceil(end - self.origin)))
        counts = [0] * len(MIX_BOUNDS)
        requests = 0
        output = uncached = cached = 0.0
        for index in range(lo, hi):
            for bucket, inp, pre, out in self.seconds[index]:
                counts[bucket] += 1
                requests += 1
                output += out
                uncached += pre
                cached += inp - pre
        span = max(1.0, min(self.window_s, end - self.origin))
        histogram, seen = [], 0
        for bound, count in zip(MIX_BOUNDS, counts, strict=True):
            seen += count
            histogram.append((bound, seen / span))
        local_useful, local_tokens = self._local_tokens(end)
        deployment = DeploymentMetrics(
            requests_per_s=requests / span,
            output_tokens_per_s=output / span,
            input_tokens_per_s=uncached / span,
            cached_input_tokens_per_s=cached / span,
            local_output_tokens=local_tokens,
            local_useful_tokens=local_useful,
            prefill_histogram=tuple(histogram) if requests else (),
            present=True,
            engines=self._engines(start, end, span),
        )
        return MetricsSnapshot(
            taken_at_s=max(0.0, end),
            window_s=span,
            healthy=True,
            deployments={SIMULATED: deployment},
        )

    def snapshot(self, now: float, pools: Mapping[str, PoolObservation]) -> Snapshot:
        """The planner's view, through the operator's own observation path."""
        metrics = self.metrics(now)
        return observe(metrics, metrics.for_deployment(*SIMULATED), pools)
