"""Fixtures of the engine tests: a small, fast profile."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from weir.api.profile import EngineProfile, load_profile

DATA = Path(__file__).parent / "data"

# The reference engine needs the optional `engine` extra (torch). Without it its
# tests are not collected (rather than skipped): install `.[engine]` to run them.
collect_ignore = [] if importlib.util.find_spec("torch") else ["test_engine_torch.py"]


@pytest.fixture
def small_profile() -> EngineProfile:
    return load_profile(DATA / "small-profile.yaml")
