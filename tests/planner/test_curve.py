"""The profile's curve, as the planner and the emulated engine both read it."""

from __future__ import annotations

import pytest

from weir.api.profile import EngineProfile, ProfilePoint
from weir.planner.curve import ProfileCurve, profile_curve

METRICS = ("itl_p50_s", "ttft_p50_s")


def _point(concurrency: int, input_tokens: int, itl: float) -> ProfilePoint:
    return ProfilePoint(
        concurrency=concurrency,
        input_tokens=input_tokens,
        output_tokens=100,
        ttft_p50_s=10 * itl,
        ttft_p95_s=20 * itl,
        itl_p50_s=itl,
        itl_p95_s=2 * itl,
        output_tokens_per_s=1 / itl,
    )


def _profile() -> EngineProfile:
    points = (
        _point(1, 100, 0.010),
        _point(8, 100, 0.020),
        _point(8, 100, 0.030),  # measured twice: the mean counts
        _point(1, 1000, 0.040),
        _point(8, 1000, 0.080),
    )
    return EngineProfile(
        model="m", gpu="g", precision="fp8", tensor_parallel=1, source="test", points=points
    )


def test_linear_in_concurrency_then_input_length_and_clamped() -> None:
    curve = ProfileCurve.of(_profile().points, METRICS)
    assert curve.at(1, 100) == (0.010, 0.10)
    assert curve.at(8, 100) == pytest.approx((0.025, 0.25))
    assert curve.at(4.5, 1000) == pytest.approx((0.060, 0.60))
    assert curve.at(4.5, 550) == pytest.approx(((0.0175 + 0.060) / 2, (0.175 + 0.60) / 2))
    assert curve.at(0, 0) == curve.at(1, 100)
    assert curve.at(1e9, 1e9) == curve.at(8, 1000)


def test_built_once_per_profile_object() -> None:
    profile = _profile()
    assert profile_curve(profile, METRICS) is profile_curve(profile, METRICS)
    assert profile_curve(_profile(), METRICS) == profile_curve(profile, METRICS)


def test_a_metric_the_profile_does_not_measure_is_refused() -> None:
    with pytest.raises(ValueError, match="not a profile metric: itl_p99_s"):
        ProfileCurve.of(_profile().points, ("itl_p99_s",))
