"""The planner's prompt mix from the router's prefill histogram (no cluster needed)."""

from __future__ import annotations

import math

import pytest

from weir.metrics.mix import mix_from_histogram, one_bucket
from weir.planner.evaluate import split_mix
from weir.planner.types import MIX_BOUNDS

WINDOW_S = 60.0


def cumulative(per_bucket: dict[float, float]) -> list[tuple[float, float]]:
    """Rates per bucket bound -> the cumulative `le` series Prometheus answers with."""
    out, running = [], 0.0
    for le in MIX_BOUNDS:
        running += per_bucket.get(le, 0.0)
        out.append((le, running))
    return out


def bound_of(tokens: float) -> float:
    """The bucket a prompt of `tokens` prefill tokens is counted in."""
    return min(b for b in MIX_BOUNDS if b >= tokens)


def below(bound: float) -> float:
    return max((b for b in MIX_BOUNDS if b < bound), default=0.0)


def test_a_long_context_tail_stays_a_bucket_of_its_own() -> None:
    """9 of 10 requests near 400 prompt tokens, 1 near 20,000: the tail is not averaged away."""
    rate = 2.0
    prompts = {bound_of(400): 0.9 * rate, bound_of(20_000): 0.1 * rate}
    prefill = (0.9 * 400 + 0.1 * 20_000) * rate * WINDOW_S
    mix = mix_from_histogram(
        cumulative(prompts),
        requests=rate * WINDOW_S,
        input_tokens=prefill,
        prefill_tokens=prefill,
        output_tokens=200 * rate * WINDOW_S,
    )
    assert [b.prefill_tokens_le for b in mix] == [bound_of(400), bound_of(20_000)]
    assert [round(b.requests, 6) for b in mix] == [108.0, 12.0]
    assert math.isclose(sum(b.prefill_tokens for b in mix), prefill, rel_tol=0.02)
    assert math.isclose(sum(b.output_tokens for b in mix), 200 * rate * WINDOW_S)
    for bucket in mix:
        lower = below(bucket.prefill_tokens_le)
        assert lower <= bucket.prefill_tokens / bucket.requests <= bucket.prefill_tokens_le
    # A replica that can prefill at most 8k tokens in its TTFT budget keeps 90% local;
    # the one-bucket mean (2,360 tokens, bound 4,720) would have called it all local.
    split = split_mix(mix, 8192.0, 95.0, None, 0.0)
    assert math.isclose(split.local_share, 0.9)
    mean = one_bucket(rate * WINDOW_S, prefill, prefill, 200 * rate * WINDOW_S)
    assert split_mix(mean, 8192.0, 95.0, None, 0.0).local_share == 1.0


def test_the_open_top_bucket_takes_the_tokens_the_finite_ones_leave() -> None:
    rate = 1.0
    prefill = (0.5 * 100 + 0.5 * 400_000) * rate * WINDOW_S  # half beyond the last bound
    mix = mix_from_histogram(
        cumulative({128.0: 0.5, math.inf: 0.5}),
        requests=rate * WINDOW_S,
        input_tokens=prefill,
        prefill_tokens=prefill,
        output_tokens=WINDOW_S,
    )
    top = mix[-1]
    assert math.isclose(sum(b.prefill_tokens for b in mix), prefill)
    assert top.prefill_tokens / top.requests > MIX_BOUNDS[-2]
    assert math.isfinite(top.prefill_tokens_le) and top.prefill_tokens_le > MIX_BOUNDS[-2]


def test_cached_prompt_tokens_are_spread_by_requests() -> None:
    mix = mix_from_histogram(
        cumulative({64.0: 1.0, 1024.0: 1.0}),
        requests=2 * WINDOW_S,
        input_tokens=10_000 * WINDOW_S,
        prefill_tokens=800 * WINDOW_S,
        output_tokens=100 * WINDOW_S,
    )
    assert math.isclose(sum(b.input_tokens for b in mix), 10_000 * WINDOW_S, rel_tol=0.05)
    for bucket in mix:
        assert bucket.input_tokens >= bucket.prefill_tokens


@pytest.mark.parametrize(
    "histogram",
    [[], [(32.0, 0.0), (math.inf, 0.0)]],
    ids=["no histogram", "empty histogram"],
)
def test_without_a_histogram_the_mix_is_one_bucket_at_twice_the_mean(histogram) -> None:
    mix = mix_from_histogram(histogram, 60.0, 30_000.0, 30_000.0, 6_000.0)
    assert len(mix) == 1
    assert mix[0].prefill_tokens_le == 1000.0 and mix[0].requests == 60.0


def test_rate_extrapolation_that_dents_the_cumulative_series_is_clamped() -> None:
    dented = [(32.0, 0.0), (64.0, 1.02), (128.0, 1.0), (256.0, 2.0), (math.inf, 2.0)]
    mix = mix_from_histogram(dented, 120.0, 12_000.0, 12_000.0, 1_200.0)
    assert all(b.requests >= 0 for b in mix)
    assert [b.prefill_tokens_le for b in mix] == [64.0, 256.0]
    assert math.isclose(sum(b.requests for b in mix), 120.0)


def test_no_traffic_no_mix() -> None:
    assert mix_from_histogram(cumulative({512.0: 1.0}), 0.0, 0.0, 0.0, 0.0) == ()
