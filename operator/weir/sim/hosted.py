"""The simulated hosted endpoint: latency, price, prompt cache and 429s.

A hosted API has no capacity the planner controls, only a price per token,
a latency profile and a rate limit. Latency is log-normal through the
profile's median and 95th percentile, plus (when the scenario sets the
provider's prefill rate) the uncached prompt over that rate: the provider
prefills too, so a 30k-token prompt does not come back as fast as a short
one, and the long-prompt spill rule must pay for that. Prompt-cache hits are
the leading prefix blocks the provider saw within its cache lifetime;
requests beyond the per-minute limit are refused (429) and the router must
place them elsewhere.
"""

from __future__ import annotations

import math
import random
from collections import deque

from weir.api.hosted import HostedEndpointSpec
from weir.planner.economics import hosted_dollars

BLOCK_TOKENS = 512
_Z95 = 1.6448536269514722


class HostedSim:
    """State of one hosted endpoint during a run."""

    def __init__(
        self,
        spec: HostedEndpointSpec,
        rng: random.Random,
        prefill_tokens_per_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.prefill_s_per_token = 1.0 / prefill_tokens_per_s if prefill_tokens_per_s else 0.0
        self.sent: deque[float] = deque()
        self.cache: dict[int, float] = {}
        lat = spec.latency
        self._mu = math.log(lat.ttft_p50_seconds)
        self._sigma = max(0.0, math.log(lat.ttft_p95_seconds / lat.ttft_p50_seconds) / _Z95)

    def throttled(self, now: float) -> bool:
        """Whether one more request in the current minute would get a 429."""
        while self.sent and self.sent[0] <= now - 60.0:
            self.sent.popleft()
        return len(self.sent) >= self.spec.requests_per_minute

    def serve(
        self, now: float, input_tokens: int, output_tokens: int, hashes: tuple[int, ...]
    ) -> tuple[float, float, float, int]:
        """Send one request: (ttft_s, mean_itl_s, dollars, cached_tokens)."""
        self.sent.append(now)
        cached = self._cached_tokens(now, input_tokens, hashes)
        ttft = math.exp(self.rng.gauss(self._mu, self._sigma))
        ttft += (input_tokens - cached) * self.prefill_s_per_token
        dollars = hosted_dollars(self.spec, input_tokens, cached, output_tokens)
        return ttft, self.spec.latency.itl_seconds, dollars, cached

    def _cached_tokens(self, now: float, input_tokens: int, hashes: tuple[int, ...]) -> int:
        if not hashes:
            return 0
        horizon = now - self.spec.prompt_cache_seconds
        hits = 0
        for block in hashes:
            seen = self.cache.get(block)
            if seen is None or seen < horizon:
                break
            hits += 1
        for block in hashes:
            self.cache[block] = now
        if len(self.cache) > 2_000_000:
            self.cache = {k: v for k, v in self.cache.items() if v >= horizon}
        return min(hits * BLOCK_TOKENS, input_tokens)
