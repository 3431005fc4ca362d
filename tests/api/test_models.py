"""The resource models validate what an SRE writes and name the field when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from weir.api import (
    CapacityPoolSpec,
    HostedEndpointSpec,
    InferenceDeploymentSpec,
    PoolBinding,
    SpecError,
)
from weir.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]

DEPLOYMENT = {
    "model": {"name": "meta-llama/Llama-3.3-70B-Instruct", "tensorParallel": 2},
    "slo": {"ttftSeconds": 1.5, "itlSeconds": 0.06, "usefulTokenTarget": 0.99},
    "cost": {"budgetDollarsPerHour": 100},
    "pools": [{"pool": "od", "minReplicas": 1, "maxReplicas": 4}],
    "hosted": {"endpoint": "api", "maxShare": 0.5, "maxDollarsPerHour": 20},
}


def test_camel_case_and_snake_case_both_accepted() -> None:
    spec = InferenceDeploymentSpec.model_validate(DEPLOYMENT)
    assert spec.slo.ttft_seconds == 1.5
    assert spec.pools[0].max_replicas == 4
    assert spec.model_dump(by_alias=True)["slo"]["usefulTokenTarget"] == 0.99
    binding = PoolBinding(pool="x", min_replicas=0, max_replicas=2)
    assert binding.model_dump(by_alias=True) == {"pool": "x", "minReplicas": 0, "maxReplicas": 2}


def test_min_above_max_names_both_fields() -> None:
    with pytest.raises(ValidationError, match="minReplicas"):
        PoolBinding.model_validate({"pool": "x", "minReplicas": 5, "maxReplicas": 2})


@pytest.mark.parametrize(
    ("field", "value"),
    [("dollarsPerGpuHour", -1.0), ("gpusPerReplica", 0), ("coldStartSeconds", float("nan"))],
)
def test_pool_bounds_name_the_field(field: str, value: float) -> None:
    raw = {
        "gpuType": "H100",
        "gpusPerReplica": 2,
        "dollarsPerGpuHour": 3.9,
        "coldStartSeconds": 300,
    }
    raw[field] = value
    with pytest.raises(ValidationError, match=field):
        CapacityPoolSpec.model_validate(raw)


def test_on_demand_pool_cannot_be_interrupted() -> None:
    with pytest.raises(ValidationError, match="interruptionsPerInstanceMonth"):
        CapacityPoolSpec.model_validate(
            {
                "gpuType": "H100",
                "gpusPerReplica": 1,
                "dollarsPerGpuHour": 3.9,
                "coldStartSeconds": 300,
                "interruptionsPerInstanceMonth": 0.2,
            }
        )


def test_cached_input_not_dearer_than_input() -> None:
    with pytest.raises(ValidationError, match="dollarsPerMillionCachedInputTokens"):
        HostedEndpointSpec.model_validate(
            {
                "dollarsPerMillionInputTokens": 0.5,
                "dollarsPerMillionCachedInputTokens": 0.6,
                "dollarsPerMillionOutputTokens": 1.0,
                "latency": {"ttftP50Seconds": 0.4, "ttftP95Seconds": 0.9, "itlSeconds": 0.025},
                "requestsPerMinute": 100,
            }
        )


def test_duplicate_pools_and_hosted_cap_over_budget_refused() -> None:
    twice = dict(DEPLOYMENT, pools=[DEPLOYMENT["pools"][0], DEPLOYMENT["pools"][0]])  # type: ignore[index]
    with pytest.raises(ValidationError, match="each pool may be listed once"):
        InferenceDeploymentSpec.model_validate(twice)
    over = dict(DEPLOYMENT, hosted={"endpoint": "api", "maxDollarsPerHour": 500})
    with pytest.raises(ValidationError, match="maxDollarsPerHour"):
        InferenceDeploymentSpec.model_validate(over)


def test_shipped_scenarios_load() -> None:
    for name in ("default", "cheap-hosted"):
        scenario = load_scenario(ROOT / "bench" / "scenarios" / f"{name}.yaml")
        assert scenario.pools["spot"].capacity_type == "spot"
        assert scenario.pools["on-demand"].dollars_per_replica_hour == pytest.approx(7.8)


def test_scenario_error_names_the_field(tmp_path: Path) -> None:
    text = (ROOT / "bench" / "scenarios" / "default.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("dollarsPerGpuHour: 2.00", "dollarsPerGpuHour: -2"))
    with pytest.raises(SpecError, match=r"pools\.spot\.dollarsPerGpuHour"):
        load_scenario(bad)
