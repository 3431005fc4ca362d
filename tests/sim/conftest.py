"""Simulator fixtures: the default scenario and its profiles (read from the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from weir.api import EngineProfile
from weir.sim.scenario import Scenario, load_scenario, load_scenario_profiles

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return load_scenario(ROOT / "bench" / "scenarios" / "default.yaml")


@pytest.fixture(scope="session")
def cheap_scenario() -> Scenario:
    return load_scenario(ROOT / "bench" / "scenarios" / "cheap-hosted.yaml")


@pytest.fixture(scope="session")
def profiles(scenario: Scenario) -> dict[str, EngineProfile]:
    return load_scenario_profiles(scenario, ROOT / "engines" / "profiles")
