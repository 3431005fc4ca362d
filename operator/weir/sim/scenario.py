"""Scenarios: the prices, pools, hosted endpoint and SLO a benchmark runs under.

A scenario is the same resource models the operator reads (pools, hosted
endpoint, InferenceDeployment spec) plus what only a simulation needs: which
engine profile each pool runs and how Prometheus is scraped. Keeping it in
YAML under bench/scenarios/ keeps every price in configuration, not code.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from weir.api import (
    CapacityPoolSpec,
    EngineProfile,
    HostedEndpointSpec,
    InferenceDeploymentSpec,
    Resource,
    SpecError,
    load_profile,
)
from weir.api._base import load_yaml_model
from weir.planner.types import PlanningSpec
from weir.sim.stresses import Stresses


class TelemetrySettings(Resource):
    """How the simulated Prometheus sees the system."""

    scrape_interval_seconds: float = Field(default=15.0, gt=0, le=600, description="Scrape, s.")
    scrape_delay_seconds: float = Field(
        default=15.0, ge=0, le=600, description="Lag between an event and the planner seeing it, s."
    )
    window_seconds: float = Field(default=60.0, gt=0, le=3600, description="Rate window, s.")


class Scenario(Resource):
    """Everything a benchmark run needs besides the trace and the policy."""

    name: str = Field(min_length=1, description="Short name.")
    description: str = Field(default="", description="What the scenario represents.")
    profile: str = Field(min_length=1, description="Engine profile (file stem) all pools run.")
    pool_profiles: dict[str, str] = Field(
        default_factory=dict, description="Per-pool profile override, by pool name."
    )
    pools: dict[str, CapacityPoolSpec] = Field(min_length=1, description="Pools by name.")
    hosted: HostedEndpointSpec | None = Field(default=None, description="Hosted endpoint.")
    deployment: InferenceDeploymentSpec = Field(description="The InferenceDeployment spec.")
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    prefix_cache_tokens: int = Field(
        default=2_000_000,
        ge=0,
        description=(
            "Prompt tokens the fleet's prefix cache holds (GPU plus host-offloaded KV), shared "
            "as if the router were prefix-aware; one LRU of 512-token blocks."
        ),
    )
    stresses: Stresses = Field(
        default_factory=Stresses,
        description="Abandonment, retries, per-token ITL, hosted prompt TTFT, spot traces.",
    )
    on_demand_pool: str = Field(
        min_length=1, description="Pool used by --target-peak-replicas and the static baselines."
    )

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for binding in self.deployment.pools:
            if binding.pool not in self.pools:
                raise ValueError(f"deployment.pools: unknown pool {binding.pool!r}")
        if self.on_demand_pool not in self.pools:
            raise ValueError(f"onDemandPool: unknown pool {self.on_demand_pool!r}")
        if (self.deployment.hosted is None) != (self.hosted is None):
            raise ValueError("hosted: the deployment's hosted burst and the endpoint go together")
        return self

    def planning_spec(self) -> PlanningSpec:
        """The planner's view of the scenario."""
        used = {b.pool: self.pools[b.pool] for b in self.deployment.pools}
        return PlanningSpec(self.deployment, used, self.hosted)

    def profile_names(self) -> dict[str, str]:
        """Profile file stem per pool."""
        return {name: self.pool_profiles.get(name, self.profile) for name in self.pools}


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file with errors that name the field.

    Spot trace paths are relative to the scenario file, so a scenario names
    the shared data the way its folder sees it.
    """
    scenario = load_yaml_model(path, Scenario, "scenario", SpecError)
    ref = scenario.stresses.spot_trace
    if ref is None:
        return scenario
    stresses = scenario.stresses.model_copy(update={"spot_trace": ref.resolved(path.parent)})
    return scenario.model_copy(update={"stresses": stresses})


def load_scenario_profiles(scenario: Scenario, directory: Path) -> dict[str, EngineProfile]:
    """The engine profile of every pool, read from `directory`."""
    cache: dict[str, EngineProfile] = {}
    out: dict[str, EngineProfile] = {}
    for pool, stem in scenario.profile_names().items():
        if stem not in cache:
            cache[stem] = load_profile(directory / f"{stem}.yaml")
        out[pool] = cache[stem]
    return out
