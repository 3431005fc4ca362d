"""The capacity model reproduces its profiles and behaves like a queue should."""

from __future__ import annotations

import math

import pytest

from weir.api import SLO, EngineProfile
from weir.planner.capacity import Workload, leave_one_out, model_for, on_grid

CHAT = Workload(1000, 150, 3000)
SLO_DEFAULT = SLO(ttft_seconds=1.5, itl_seconds=0.06, percentile=99)


def test_fit_reproduces_the_published_slo_curve(profiles: dict[str, EngineProfile]) -> None:
    profile = profiles["on-demand"]
    model = model_for(profile)
    for point in (p for p in profile.points if not p.derived):
        pred = model.closed_loop(point.concurrency, point.input_tokens, point.output_tokens)
        assert pred.itl_mean_s == pytest.approx(point.itl_p50_s, rel=0.1)
        assert pred.rate_rps * point.output_tokens == pytest.approx(
            point.output_tokens_per_s, rel=0.1
        )


def test_leave_one_out_error_is_small(profiles: dict[str, EngineProfile]) -> None:
    report = leave_one_out(profiles["on-demand"])
    assert report.points == len(profiles["on-demand"].points)
    assert report.itl_error < 0.05
    assert report.throughput_error < 0.05
    assert report.ttft_error < 0.3


def test_more_load_means_slower_tokens(profiles: dict[str, EngineProfile]) -> None:
    model = model_for(profiles["on-demand"])
    low, high = model.predict(CHAT, 1.0), model.predict(CHAT, 5.0)
    assert high.itl_mean_s > low.itl_mean_s
    assert high.ttft_mean_s > low.ttft_mean_s
    assert high.concurrency > low.concurrency
    assert not model.predict(CHAT, 1e6).stable


def test_looser_slo_admits_more(profiles: dict[str, EngineProfile]) -> None:
    model = model_for(profiles["on-demand"])
    tight = model.max_rate(CHAT, SLO_DEFAULT)
    loose = model.max_rate(CHAT, SLO(ttft_seconds=3.0, itl_seconds=0.09, percentile=99))
    assert 0 < tight.rate_rps < loose.rate_rps
    assert tight.concurrency_limit <= loose.concurrency_limit
    assert model.meets(CHAT, tight.rate_rps * 0.99, SLO_DEFAULT)


def test_impossible_slo_gives_zero_capacity(profiles: dict[str, EngineProfile]) -> None:
    model = model_for(profiles["on-demand"])
    cap = model.max_rate(Workload(60000, 100, 60000), SLO_DEFAULT)
    assert cap.rate_rps == 0 and cap.concurrency_limit == 0


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -5.0, math.inf])
def test_workload_refuses_bad_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="mean_input_tokens"):
        Workload(bad, 100, 100)


def test_prompt_chunk_runs_cost_capacity(profiles: dict[str, EngineProfile]) -> None:
    model = model_for(profiles["on-demand"])
    even = Workload(3000, 150, 8000, mean_prefill_tokens=1800)
    skewed = Workload(
        3000, 150, 8000, mean_prefill_tokens=1800, prefill_tokens_second_moment=1800 * 8000
    )
    rate = model.max_rate(even, SLO_DEFAULT).rate_rps * 0.9
    assert model.predict(skewed, rate, 99, 0.06).run_late_token_share > (
        model.predict(even, rate, 99, 0.06).run_late_token_share
    )
    assert model.max_rate(skewed, SLO_DEFAULT).rate_rps < model.max_rate(even, SLO_DEFAULT).rate_rps


def test_the_mix_is_rounded_up_so_a_drifting_mix_reuses_its_answer_and_never_gains(
    profiles: dict[str, EngineProfile],
) -> None:
    """max_rate answers for the mix rounded up onto a 2% grid: a mix that moves within a
    grid step gets the cached answer, and the rounding only ever makes prompts longer."""
    model = model_for(next(iter(profiles.values())))
    slo = SLO(ttft_seconds=1.5, itl_seconds=0.06)
    base = Workload(1000.0, 200.0, 3000.0, 800.0, 1.2e6)
    rounded = on_grid(base)
    for name in (
        "mean_input_tokens",
        "mean_output_tokens",
        "prefill_tokens_at_percentile",
        "mean_prefill_tokens",
        "prefill_tokens_second_moment",
    ):
        exact, up = getattr(base, name), getattr(rounded, name)
        assert exact <= up <= exact * 1.02 + 1e-9
    assert on_grid(rounded) == rounded  # grid points stay where they are
    drifted = Workload(1001.0, 200.5, 3004.0, 800.9, 1.2001e6)
    assert on_grid(drifted) == rounded  # the same grid cell: the same answer, from the cache
    assert model.max_rate(drifted, slo) is model.max_rate(base, slo)
    longer = Workload(1100.0, 200.0, 3300.0, 880.0, 1.45e6)
    assert model.max_rate(longer, slo).rate_rps <= model.max_rate(base, slo).rate_rps
