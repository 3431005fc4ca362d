"""The forecaster ignores lone spikes, follows sustained change and refuses bad input."""

from __future__ import annotations

import math

import pytest

from weir.planner.forecast import DemandSample, add_sample, forecast


def _history(rates: list[float], period: float = 15.0) -> tuple[DemandSample, ...]:
    samples: tuple[DemandSample, ...] = ()
    for i, rate in enumerate(rates):
        samples = add_sample(samples, DemandSample(i * period, rate, rate * 100))
    return samples


def test_single_spike_does_not_move_the_level() -> None:
    calm = forecast(_history([10.0] * 40), 315, 60)
    spiked = forecast(_history([10.0] * 39 + [100.0]), 315, 60)
    assert spiked.rate_rps == pytest.approx(calm.rate_rps, rel=0.05)


def test_two_spiked_samples_move_the_level_twofold_not_a_hundredfold() -> None:
    """A hostile or broken exporter twice in a row (100x the requests): the level may
    rise no faster than a doubling per LEVEL_DOUBLING_S, so two spiked samples 15 s
    apart make it twice the calm level, and the upper quantile stays near it."""
    calm = forecast(_history([10.0] * 40), 315, 60)
    spiked = forecast(_history([10.0] * 38 + [1000.0] * 2), 315, 60)
    assert spiked.rate_rps <= 2.0 * calm.rate_rps + 1e-9
    assert spiked.upper_rps <= 3.0 * calm.upper_rps


def test_a_real_flash_crowd_is_believed_within_a_few_periods() -> None:
    """The bound slows belief in a jump, not belief in a real one: 100x demand that stays
    is the level within 9 samples (about two minutes, under one cold start)."""
    history = [10.0] * 40 + [1000.0] * 9
    assert forecast(_history(history), 315, 60).rate_rps >= 990.0
    assert forecast(_history(history[:-5]), 315, 60).rate_rps < 200.0


def test_demand_up_to_what_the_planned_replicas_serve_is_believed_at_once() -> None:
    """Believing demand the planned fleet already serves buys no GPU, so the bound starts
    there: a deployment at its minimum fleet (here 6 req/s of capacity) that sees 9 req/s
    believes it at once, where from the request floor alone it takes minutes."""
    history = [0.2] * 20 + [9.0] * 3
    assert forecast(_history(history), 315, 30, planned_rps=6.0).rate_rps >= 8.9
    assert forecast(_history(history), 315, 30).rate_rps < 3.0
    with pytest.raises(ValueError, match="planned_rps"):
        forecast(_history(history), 315, 30, planned_rps=float("nan"))


def test_an_idle_deployment_wakes_from_a_floor() -> None:
    """From zero demand the bound starts at a few requests per window, not at zero."""
    woken = forecast(_history([0.0] * 20 + [50.0] * 12), 315, 60)
    assert woken.rate_rps >= 49.0


def test_sustained_rise_is_followed() -> None:
    rising = forecast(_history([10.0] * 30 + [20.0] * 3), 315, 60)
    assert rising.rate_rps >= 19.0
    ramp = forecast(_history([10.0 + i for i in range(40)]), 315, 60)
    assert ramp.rate_rps > 49.0
    assert ramp.upper_rps > ramp.rate_rps


def test_gaps_and_lookback() -> None:
    samples = add_sample((), DemandSample(0, 5, 500))
    samples = add_sample(samples, DemandSample(10_000, 7, 700))
    assert len(samples) == 1
    gappy = _history([5, 5, 5])
    gappy = add_sample(gappy, DemandSample(600, 5, 500))
    assert forecast(gappy, 300, 60).rate_rps == pytest.approx(5, rel=0.2)


def test_upper_quantile_at_least_the_point_and_poisson_floor() -> None:
    flat = forecast(_history([4.0] * 60), 315, 60, quantile=0.9)
    assert flat.upper_rps > flat.rate_rps
    assert flat.sigma_rps >= math.sqrt(4.0 / 60) - 1e-9


def test_bad_input_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        forecast([], 300, 60)
    with pytest.raises(ValueError, match="finite"):
        DemandSample(0, float("nan"), 1)
    with pytest.raises(ValueError, match=">= 0"):
        DemandSample(0, -1, 1)
    with pytest.raises(ValueError, match="horizon_s"):
        forecast(_history([1.0]), float("inf"), 60)
