"""Fixtures of the engine tests: a small, fast profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from weir.api.profile import EngineProfile, load_profile

DATA = Path(__file__).parent / "data"


@pytest.fixture
def small_profile() -> EngineProfile:
    return load_profile(DATA / "small-profile.yaml")
