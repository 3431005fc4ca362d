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
