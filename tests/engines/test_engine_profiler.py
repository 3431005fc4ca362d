"""The profiler against the emulated engine on 127.0.0.1: round trip, saturation, errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from weir.api.profile import EngineProfile, ProfilePoint, load_profile
from weir.engines.errors import ProfilerError
from weir.engines.profiler import (
    Profiler,
    ProfileTarget,
    Sweep,
    percentile,
    profile_endpoint,
    write_profile,
)
from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
from weir.refengine.serve import started_server
from weir.refengine.server import ServerSettings
from weir.refengine.timing import fixed_profile

DATA = Path(__file__).parent / "data"


def _key(p: ProfilePoint) -> tuple[int, int]:
    return (p.input_tokens, p.concurrency)


_TRIES = 3


def _misses(measured: ProfilePoint, want: ProfilePoint) -> list[str]:
    fields = ("ttft_p50_s", "itl_p50_s", "ttft_p95_s", "itl_p95_s")
    return [
        f"{f}: {getattr(measured, f):.4f} vs {getattr(want, f):.4f}"
        for f in fields
        if abs(getattr(measured, f) / getattr(want, f) - 1) > 0.10
    ]


async def test_profiling_the_emulated_engine_gives_its_profile_back() -> None:
    """Acceptance: measured TTFT and ITL under load within 10% of the replayed profile.

    Four points: three loads at one prompt length and one at the other. Other work
    on the machine can only delay timers (a loaded CI machine added 20 ms to a
    median), so a point passes when any of three measurements is within 10%: a
    profiler that measures wrong misses all three, and too-low values are never
    explained by load.
    """
    truth = load_profile(DATA / "roundtrip-profile.yaml")
    expected = {_key(p): p for p in truth.points}
    engine = EmulatedEngine(truth, EmulatedSettings(seed=7))
    sweep = Sweep(concurrency=(1,), shapes=((64, 8),), requests_per_level=10)
    target = ProfileTarget(model="test/roundtrip")
    async with (
        started_server(engine, ServerSettings(model_name="test/roundtrip")) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=30) as client,
    ):
        profiler = Profiler(client, target, sweep)
        await profiler.calibrate()
        for concurrency, input_tokens in ((1, 64), (4, 64), (12, 64), (4, 512)):
            want = expected[(input_tokens, concurrency)]
            tries = []
            for _ in range(_TRIES):
                misses = _misses(await profiler.measure(concurrency, input_tokens, 8), want)
                if not misses:
                    break
                tries.append(misses)
            assert len(tries) < _TRIES, (concurrency, input_tokens, tries)


async def test_written_profiles_load_back(tmp_path: Path) -> None:
    profile = fixed_profile("test/m", 0.02, 0.03, 0.004, 0.005, max_concurrency=8)
    sweep = Sweep(concurrency=(1, 2), shapes=((16, 4),), requests_per_level=3)
    async with started_server(EmulatedEngine(profile), ServerSettings(model_name="test/m")) as srv:
        measured = await profile_endpoint(srv.url, ProfileTarget(model="test/m"), sweep)
    out = tmp_path / "measured.yaml"
    write_profile(measured, out)
    again = load_profile(out)
    assert again == measured
    assert "weir profile" in again.source and "closed loop" in again.source


async def test_throughput_rises_to_saturation_then_ttft_rises() -> None:
    """Past the batch limit only the queue grows: flat throughput, rising TTFT."""
    profile = fixed_profile("test/sat", 0.05, 0.055, 0.01, 0.011, max_concurrency=4)
    engine = EmulatedEngine(profile, EmulatedSettings(seed=1))
    sweep = Sweep(concurrency=(1, 2, 4, 8), shapes=((32, 10),), requests_per_level=8)
    async with started_server(engine, ServerSettings(model_name="test/sat")) as srv:
        measured = await profile_endpoint(srv.url, ProfileTarget(model="test/sat"), sweep)
    by_c = {p.concurrency: p for p in measured.points}
    tps = [by_c[c].output_tokens_per_s for c in (1, 2, 4, 8)]
    assert tps[0] < tps[1] < tps[2]
    assert tps[3] == pytest.approx(tps[2], rel=0.2)
    assert by_c[8].ttft_p50_s > 1.5 * by_c[4].ttft_p50_s


async def test_unreachable_or_refusing_endpoint_is_a_profiler_error() -> None:
    sweep = Sweep(concurrency=(1,), shapes=((8, 2),), requests_per_level=1)
    target = ProfileTarget(model="m")
    with pytest.raises(ProfilerError):
        await profile_endpoint("http://127.0.0.1:9", target, sweep)
    profile = fixed_profile("m", 0.01, 0.01, 0.001, 0.001)
    settings = ServerSettings(model_name="m", api_key="right")
    async with started_server(EmulatedEngine(profile), settings) as srv:
        with pytest.raises(ProfilerError, match="401"):
            await profile_endpoint(srv.url, target, sweep, api_key="wrong")
        measured = await profile_endpoint(srv.url, target, sweep, api_key="right")
    assert isinstance(measured, EngineProfile)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    with pytest.raises(ProfilerError):
        percentile([], 50)
