"""Predicted economics of one candidate fleet, under a demand forecast.

Separated from the search so the planner, the baselines' reports and the
`whatif` diagnostic price a fleet the same way. Demand at the horizon is
normal with the forecast's mean and spread; local capacity is the sum of
per-replica SLO rates; what exceeds it spills to the hosted endpoint up to
the share, dollar and rate limits; what exceeds those is predicted unserved
(not useful). Long prompts that cannot meet TTFT on a replica go hosted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.planner.capacity import Workload
from weir.planner.types import MixBucket

_NORMAL = NormalDist()


@dataclass(frozen=True)
class MixSplit:
    """The request mix split into what replicas can serve and what must go hosted."""

    local: Workload
    local_share: float
    long_output_tokens: float
    local_dollars_per_request: float
    long_dollars_per_request: float


def split_mix(
    mix: tuple[MixBucket, ...],
    max_local_prefill: float,
    percentile: float,
    hosted: HostedEndpointSpec | None,
    hosted_cached_fraction: float,
) -> MixSplit:
    """Local workload for buckets at or under `max_local_prefill`, the rest as long."""
    local = [b for b in mix if b.prefill_tokens_le <= max_local_prefill]
    long = [b for b in mix if b.prefill_tokens_le > max_local_prefill]
    total = sum(b.requests for b in mix)
    n_local = sum(b.requests for b in local)
    n_long = total - n_local
    basis = local if n_local > 0 else list(mix)
    n_basis = sum(b.requests for b in basis)
    workload = Workload(
        mean_input_tokens=max(1.0, sum(b.input_tokens for b in basis) / n_basis),
        mean_output_tokens=max(1.0, sum(b.output_tokens for b in basis) / n_basis),
        prefill_tokens_at_percentile=max(1.0, _bucket_percentile(basis, percentile)),
        mean_prefill_tokens=sum(b.prefill_tokens for b in basis) / n_basis,
        prefill_tokens_second_moment=sum(
            b.prefill_tokens**2 / b.requests for b in basis if b.requests > 0
        )
        / n_basis,
    )
    long_out = sum(b.output_tokens for b in long) / n_long if n_long > 0 else 0.0
    return MixSplit(
        local=workload,
        local_share=n_local / total if total > 0 else 1.0,
        long_output_tokens=long_out,
        local_dollars_per_request=_request_dollars(local or basis, hosted, hosted_cached_fraction),
        long_dollars_per_request=_request_dollars(long, hosted, hosted_cached_fraction),
    )


def _bucket_percentile(buckets: list[MixBucket], percentile: float) -> float:
    total = sum(b.requests for b in buckets)
    goal = total * percentile / 100.0
    seen, lower = 0.0, 0.0
    for bucket in buckets:
        if seen + bucket.requests >= goal and bucket.requests > 0:
            inside = (goal - seen) / bucket.requests
            return lower + inside * (bucket.prefill_tokens_le - lower)
        seen += bucket.requests
        lower = bucket.prefill_tokens_le
    return lower


def _request_dollars(
    buckets: list[MixBucket], hosted: HostedEndpointSpec | None, cached_fraction: float
) -> float:
    n = sum(b.requests for b in buckets)
    if hosted is None or n == 0:
        return 0.0
    inp = sum(b.input_tokens for b in buckets) / n
    out = sum(b.output_tokens for b in buckets) / n
    return hosted.request_dollars(inp, inp * cached_fraction, out)


@dataclass(frozen=True)
class Demand:
    """Demand at the horizon: total requests/s, normal with this mean and spread."""

    mean_rps: float
    sigma_rps: float


@dataclass(frozen=True)
class Limits:
    """Hosted limits and the budget the candidate must live within."""

    hosted_enabled: bool
    max_hosted_share: float
    max_hosted_dollars_per_hour: float
    hosted_requests_per_s: float
    budget_dollars_per_hour: float


@dataclass(frozen=True)
class Outcome:
    """Predicted economics of one fleet."""

    gpu_dollars_per_hour: float
    hosted_dollars_per_hour: float
    useful_fraction: float
    hosted_share: float
    local_capacity_rps: float
    hosted_allowed_rps: float
    dollars_per_million_useful: float

    @property
    def dollars_per_hour(self) -> float:
        """GPU plus expected hosted spend."""
        return self.gpu_dollars_per_hour + self.hosted_dollars_per_hour


def excess(mean: float, sigma: float, threshold: float) -> float:
    """E[(D - threshold)+] for D normal(mean, sigma), clipped at D >= 0 in effect."""
    if sigma <= 1e-12:
        return max(mean - threshold, 0.0)
    z = (mean - threshold) / sigma
    return sigma * _NORMAL.pdf(z) + (mean - threshold) * _NORMAL.cdf(z)


def gpu_cost_per_hour(
    replicas: Mapping[str, int],
    pools: Mapping[str, CapacityPoolSpec],
    rates: Mapping[str, float],
    spill_dollars_per_request: float,
    current: Mapping[str, int] | None = None,
    amortisation_s: float = 1800.0,
) -> float:
    """Replica prices, the expected cost of covering a spot interruption, and the
    cold start of replicas not yet running spread over their expected lifetime."""
    total = 0.0
    for name, count in replicas.items():
        pool = pools[name]
        risk = pool.interruptions_per_hour * pool.cold_start_seconds * rates.get(name, 0.0)
        total += count * (pool.dollars_per_replica_hour + risk * spill_dollars_per_request)
        new = max(0, count - (current or {}).get(name, count))
        total += new * pool.dollars_per_replica_hour * pool.cold_start_seconds / amortisation_s
    return total


def evaluate(
    replicas: Mapping[str, int],
    rates: Mapping[str, float],
    pools: Mapping[str, CapacityPoolSpec],
    split: MixSplit,
    demand: Demand,
    limits: Limits,
    current: Mapping[str, int] | None = None,
    amortisation_s: float = 1800.0,
) -> Outcome:
    """Predicted spend, hosted share and useful fraction of `replicas` under `demand`;
    replicas beyond `current` also pay their cold start (see gpu_cost_per_hour)."""
    gpu = gpu_cost_per_hour(
        replicas, pools, rates, split.local_dollars_per_request, current, amortisation_s
    )
    capacity = sum(count * rates.get(name, 0.0) for name, count in replicas.items())
    mu_local = demand.mean_rps * split.local_share
    sigma_local = demand.sigma_rps * split.local_share
    mu_long = demand.mean_rps - mu_local
    allowed = _hosted_allowed(demand.mean_rps, gpu, split, limits)
    allowed_local = max(0.0, allowed - mu_long)
    spill = excess(mu_local, sigma_local, capacity)
    unserved_local = excess(mu_local, sigma_local, capacity + allowed_local)
    unserved_long = max(0.0, mu_long - allowed)
    hosted_local = max(0.0, spill - unserved_local)
    hosted_long = mu_long - unserved_long
    hosted_dollars = 3600.0 * (
        hosted_local * split.local_dollars_per_request
        + hosted_long * split.long_dollars_per_request
    )
    out_local = split.local.mean_output_tokens
    demand_tokens = mu_local * out_local + mu_long * split.long_output_tokens
    lost = unserved_local * out_local + unserved_long * split.long_output_tokens
    useful = 1.0 if demand_tokens <= 0 else max(0.0, 1.0 - lost / demand_tokens)
    useful_per_hour = 3600.0 * (demand_tokens - lost)
    total = gpu + hosted_dollars
    per_million = total / useful_per_hour * 1e6 if useful_per_hour > 0 else math.inf
    share = (hosted_local + hosted_long) / demand.mean_rps if demand.mean_rps > 0 else 0.0
    return Outcome(gpu, hosted_dollars, useful, share, capacity, allowed, per_million)


def _hosted_allowed(mean_rps: float, gpu: float, split: MixSplit, limits: Limits) -> float:
    if not limits.hosted_enabled:
        return 0.0
    dollars_cap = min(limits.max_hosted_dollars_per_hour, limits.budget_dollars_per_hour - gpu)
    blended = (
        split.local_share * split.local_dollars_per_request
        + (1 - split.local_share) * split.long_dollars_per_request
    )
    by_dollars = math.inf if blended <= 0 else max(0.0, dollars_cap) / 3600.0 / blended
    # the router's share cap is relative to the traffic it sees: at 100% it never binds
    by_share = math.inf if limits.max_hosted_share >= 1.0 else limits.max_hosted_share * mean_rps
    return max(0.0, min(by_share, by_dollars, limits.hosted_requests_per_s))
