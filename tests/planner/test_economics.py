"""$ per useful token on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from weir.api import HostedEndpointSpec
from weir.planner.economics import (
    CostSummary,
    dollars_per_million_useful,
    hosted_dollars,
    is_useful,
    replica_dollars,
    useful_fraction,
)

HOSTED = HostedEndpointSpec.model_validate(
    {
        "dollarsPerMillionInputTokens": 0.70,
        "dollarsPerMillionCachedInputTokens": 0.35,
        "dollarsPerMillionOutputTokens": 0.90,
        "latency": {"ttftP50Seconds": 0.4, "ttftP95Seconds": 0.9, "itlSeconds": 0.025},
        "requestsPerMinute": 6000,
    }
)


def test_replica_spend_counts_every_second_whatever_the_state() -> None:
    # two idle on-demand replicas for 30 min at $7.80/h, one spot replica warming 5 min at $4/h
    idle = replica_dollars(2 * 1800, 7.80)
    warming = replica_dollars(300, 4.00)
    assert idle == pytest.approx(7.80)
    assert warming == pytest.approx(4.00 / 12)


def test_hosted_prices_input_cached_and_output_apart() -> None:
    # 1000 prompt tokens of which 400 cached, 100 generated:
    # 600 * 0.70 + 400 * 0.35 + 100 * 0.90 = 420 + 140 + 90 = 650 micro-dollars
    assert hosted_dollars(HOSTED, 1000, 400, 100) == pytest.approx(650e-6)
    assert hosted_dollars(HOSTED, 1000, 0, 0) == pytest.approx(700e-6)
    with pytest.raises(ValueError, match="cached_input_tokens"):
        hosted_dollars(HOSTED, 100, 200, 1)


def test_wasted_tokens_are_paid_for_but_not_in_the_denominator() -> None:
    summary = CostSummary(
        gpu_dollars_by_pool={"on-demand": 7.80, "spot": 4.00 / 12},
        hosted_dollars=650e-6 * 1000,
        useful_tokens=2_000_000,
        wasted_tokens=500_000,
        demanded_tokens=2_600_000,
    )
    total = 7.80 + 4.00 / 12 + 0.65
    assert summary.total_dollars == pytest.approx(total)
    assert summary.dollars_per_million_useful_tokens == pytest.approx(total / 2.0)
    assert summary.useful_token_fraction == pytest.approx(2.0 / 2.6)


def test_edge_cases() -> None:
    assert dollars_per_million_useful(0.0, 0.0) == 0.0
    assert math.isinf(dollars_per_million_useful(1.0, 0.0))
    assert useful_fraction(0.0, 0.0) == 1.0
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="finite"):
            dollars_per_million_useful(bad, 1.0)
        with pytest.raises(ValueError, match="replica_seconds"):
            replica_dollars(bad, 1.0)
    with pytest.raises(ValueError, match="must not exceed"):
        useful_fraction(2.0, 1.0)


def test_useful_needs_both_targets() -> None:
    assert is_useful(1.5, 0.060, 1.5, 0.060)
    assert not is_useful(1.51, 0.010, 1.5, 0.060)
    assert not is_useful(0.1, 0.061, 1.5, 0.060)
