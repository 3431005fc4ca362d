"""The stresses a useful token's definition relies on, as scenario options.

A benchmark that never abandons a request, never retries one, never stalls a
stream and never loses a spot node cannot show that a policy counts waste
honestly. Each stress is off by default (the scenarios written before them
keep their numbers) and turned on per scenario (bench/scenarios/stressed.yaml
has them all):

- clients that abandon: patience for the first token drawn log-normally, and
  a total timeout, as SDKs have; an abandoned attempt's tokens are wasted,
  its cost stays; some clients then retry (a new attempt of the same request);
- naive client retries that do not cancel the first attempt: both run, both
  are paid, one is counted (the router's duplicate rule);
- the per-token ITL rule of `weir.planner.usefulness` instead of the mean;
- hosted TTFT that grows with the uncached prompt (the provider prefills too);
- spot interruptions and unavailability replayed from real traces
  (`weir.sim.spot`), scaled to the pool's declared interruption rate.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from pydantic import Field

from weir.api import Resource
from weir.planner.usefulness import ItlRule


class Abandonment(Resource):
    """How clients give up."""

    ttft_patience_p50_seconds: float = Field(
        default=8.0, gt=0, le=3600, description="Median wait for a first token before leaving, s."
    )
    ttft_patience_sigma: float = Field(
        default=1.0, ge=0, le=4, description="Log-sd of that patience (people differ a lot)."
    )
    total_timeout_seconds: float | None = Field(
        default=None, gt=0, le=86400, description="Client timeout on the whole response, s."
    )
    retry_probability: float = Field(
        default=0.0, ge=0, le=1, description="Chance an abandoning client tries again."
    )
    retry_backoff_seconds: float = Field(
        default=2.0, ge=0, le=600, description="Wait before that new attempt, s."
    )
    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts per request, at most.")

    def patience_s(self, rng: random.Random) -> float:
        """One attempt's patience for its first token."""
        return self.ttft_patience_p50_seconds * math.exp(rng.gauss(0.0, self.ttft_patience_sigma))


class Duplicates(Resource):
    """Clients whose retry timer fires without cancelling the attempt in flight."""

    probability: float = Field(
        default=0.0, ge=0, le=1, description="Chance a slow request is sent again."
    )
    after_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="No first token by then: the retry timer fires, s."
    )


class SpotTraceRef(Resource):
    """Real spot traces to replay (files in ../shared/data/spot's JSON format)."""

    preemption: str | None = Field(
        default=None, description="Preemption trace (running instances per tick)."
    )
    availability: str | None = Field(
        default=None, description="Availability trace (obtainable instances per tick)."
    )

    def resolved(self, base: Path) -> SpotTraceRef:
        """The same reference with relative paths taken against `base` (kept relative when
        `base` is: a report then names the file as its reader would, not this machine)."""

        def fix(value: str | None) -> str | None:
            if value is None or Path(value).is_absolute():
                return value
            return os.path.normpath(base / value)

        return SpotTraceRef(preemption=fix(self.preemption), availability=fix(self.availability))


class Stresses(Resource):
    """Every stress, off unless set."""

    itl_rule: ItlRule = Field(default="mean", description="How ITL is judged: mean or per_token.")
    abandonment: Abandonment | None = Field(default=None, description="Clients that give up.")
    duplicates: Duplicates | None = Field(default=None, description="Naive client retries.")
    hosted_prefill_tokens_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Hosted TTFT grows by uncached prompt tokens / this rate (unset: no growth).",
    )
    spot_trace: SpotTraceRef | None = Field(default=None, description="Real spot traces.")
