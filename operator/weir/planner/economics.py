"""$ per useful token: the one number weir minimises, computed in one place.

    $ per useful token = (GPU spend of every replica, idle and warming included
                          + hosted spend, input / cached input / output priced apart)
                         / useful (generated, in-SLO, paid-once) tokens

Input tokens are a cost, not a product; wasted tokens (late, abandoned,
duplicated) are spent for but never enter the denominator. The live router,
the simulator and the planner's predictions all call these functions, so a
pricing bug shows up in every number at once and is tested here once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from weir.api.hosted import HostedEndpointSpec

SECONDS_PER_HOUR = 3600.0


def _finite_nonneg(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def replica_dollars(replica_seconds: float, dollars_per_replica_hour: float) -> float:
    """GPU spend of replicas, whatever their state (warming, idle, busy, draining)."""
    _finite_nonneg("replica_seconds", replica_seconds)
    _finite_nonneg("dollars_per_replica_hour", dollars_per_replica_hour)
    return replica_seconds * dollars_per_replica_hour / SECONDS_PER_HOUR


def hosted_dollars(
    endpoint: HostedEndpointSpec,
    input_tokens: float,
    cached_input_tokens: float,
    output_tokens: float,
) -> float:
    """Hosted spend; cached tokens are counted inside input_tokens, as in OpenAI usage."""
    _finite_nonneg("input_tokens", input_tokens)
    _finite_nonneg("cached_input_tokens", cached_input_tokens)
    _finite_nonneg("output_tokens", output_tokens)
    if cached_input_tokens > input_tokens:
        raise ValueError("cached_input_tokens must not exceed input_tokens")
    return endpoint.request_dollars(input_tokens, cached_input_tokens, output_tokens)


def dollars_per_million_useful(total_dollars: float, useful_tokens: float) -> float:
    """$ per million useful tokens; infinite when money was spent for nothing useful."""
    _finite_nonneg("total_dollars", total_dollars)
    _finite_nonneg("useful_tokens", useful_tokens)
    if useful_tokens == 0:
        return 0.0 if total_dollars == 0 else math.inf
    return total_dollars / useful_tokens * 1e6


def useful_fraction(useful_tokens: float, demanded_tokens: float) -> float:
    """Useful share of the output tokens the clients asked for (1.0 when none were)."""
    _finite_nonneg("useful_tokens", useful_tokens)
    _finite_nonneg("demanded_tokens", demanded_tokens)
    if useful_tokens > demanded_tokens:
        raise ValueError("useful_tokens must not exceed demanded_tokens")
    return 1.0 if demanded_tokens == 0 else useful_tokens / demanded_tokens


@dataclass(frozen=True)
class CostSummary:
    """Spend and product of one run or one window."""

    gpu_dollars_by_pool: Mapping[str, float]
    hosted_dollars: float
    useful_tokens: float
    wasted_tokens: float
    demanded_tokens: float

    @property
    def total_dollars(self) -> float:
        """GPU plus hosted spend."""
        return sum(self.gpu_dollars_by_pool.values()) + self.hosted_dollars

    @property
    def dollars_per_million_useful_tokens(self) -> float:
        """The objective."""
        return dollars_per_million_useful(self.total_dollars, self.useful_tokens)

    @property
    def useful_token_fraction(self) -> float:
        """SLO attainment over generated tokens asked for."""
        return useful_fraction(self.useful_tokens, self.demanded_tokens)


def is_useful(ttft_s: float, mean_itl_s: float, ttft_target_s: float, itl_target_s: float) -> bool:
    """A request's tokens are useful when both its TTFT and its mean ITL are in target."""
    return ttft_s <= ttft_target_s and mean_itl_s <= itl_target_s
