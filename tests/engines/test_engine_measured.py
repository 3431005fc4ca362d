"""The profiles measured here load in the planner and have the expected shape."""

from __future__ import annotations

from pathlib import Path

from weir.api.profile import load_profile
from weir.planner.capacity import model_for

MEASURED = Path(__file__).resolve().parents[2] / "engines" / "measured"


def test_reference_profile_saturates_and_the_planner_loads_it() -> None:
    profile = load_profile(MEASURED / "reference-torch-4x256-cpu.yaml")
    assert "weir profile" in profile.source
    short = {p.concurrency: p for p in profile.points if p.input_tokens == 64}
    tps = [short[c].output_tokens_per_s for c in (1, 2, 4, 8, 16)]
    assert tps == sorted(tps) and tps[-1] > 2 * tps[0]
    assert short[32].output_tokens_per_s < 1.2 * short[16].output_tokens_per_s
    assert short[32].ttft_p50_s > 2 * short[16].ttft_p50_s
    assert model_for(profile).params.max_batch == 16
