"""The resource models validate what an SRE writes and name the field when it is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from weir.api import (
    CapacityPoolSpec,
    HostedEndpointSpec,
    InferenceDeploymentSpec,
    PoolBinding,
    SecretKeyRef,
    SpecError,
    describe_validation_error,
)
from weir.api.deployment import Precision
from weir.api.resources import validate_resource
from weir.engines.launch import Precision as LaunchPrecision
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


POOL = {"gpuType": "H100", "gpusPerReplica": 1, "dollarsPerGpuHour": 3.9, "coldStartSeconds": 300}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "tolerations.0.value",
        ),
        ({"tolerations": [{"key": "bad key"}]}, "tolerations.0.key"),
        ({"nodeSelector": {"weir.dev/pool": "x" * 64}}, "nodeSelector.weir.dev/pool"),
        ({"nodeSelector": {"bad key": "x"}}, "nodeSelector.bad key.[key]"),
        ({"gpusPerReplica": "2"}, "gpusPerReplica"),
        ({"coldStartSeconds": float("inf")}, "coldStartSeconds"),
        ({"maxGpus": 10**12}, "maxGpus"),
    ],
)
def test_pool_strings_and_numbers_are_bounded(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CapacityPoolSpec.model_validate({**POOL, **change})
    assert f"  {field}: " in describe_validation_error("pool", caught.value)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("model", "name"), "has space", "model.name"),
        (("model", "name"), "/models/../etc", "model.name"),
        (("model", "engineImage"), "nvcr.io/nvidia/tensorrt-llm", "model.engineImage"),
        (("model", "precision"), "fp4", "model.precision"),
        (("model", "tensorParallel"), 16, "model.tensorParallel"),
        (("cost", "budgetDollarsPerHour"), 1e18, "cost.budgetDollarsPerHour"),
        (("pools", 0, "pool"), "A" * 70, "pools.0.pool"),
        (("hosted", "endpoint"), "Api", "hosted.endpoint"),
    ],
)
def test_deployment_refuses_nonsense_naming_the_field(
    path: tuple, value: object, field: str
) -> None:
    import copy

    raw = copy.deepcopy(DEPLOYMENT)
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError, match=re.escape(field)):
        InferenceDeploymentSpec.model_validate(raw)


def test_a_deployment_nothing_could_serve_is_refused() -> None:
    zero = {**DEPLOYMENT, "pools": [{"pool": "od", "maxReplicas": 0}]}
    with pytest.raises(ValidationError, match="every pool has maxReplicas 0"):
        InferenceDeploymentSpec.model_validate({k: v for k, v in zero.items() if k != "hosted"})
    InferenceDeploymentSpec.model_validate(zero)  # hosted-only is a choice


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("InferenceDeployment", "llama-8b", True),
        ("InferenceDeployment", "8b-llama", False),  # the router Service needs a letter first
        ("InferenceDeployment", "x" * 64, False),
        ("CapacityPool", "h100-spot", True),
        ("CapacityPool", "h100.spot", False),
        ("HostedEndpoint", "Hosted", False),
    ],
)
def test_object_names_are_checked_where_children_derive_from_them(
    kind: str, name: str, ok: bool
) -> None:
    spec = {"InferenceDeployment": DEPLOYMENT, "CapacityPool": POOL}.get(kind)
    body = {"kind": kind, "metadata": {"name": name}, "spec": spec}
    if kind == "HostedEndpoint":
        prices = ("Input", "CachedInput", "Output")
        body["spec"] = {
            **{f"dollarsPerMillion{p}Tokens": 1 for p in prices},
            "requestsPerMinute": 10,
            "latency": {"ttftP50Seconds": 1, "ttftP95Seconds": 1, "itlSeconds": 0.1},
        }
    if ok:
        validate_resource(body)
    else:
        with pytest.raises(SpecError, match=r"metadata\.name"):
            validate_resource(body)


def test_api_precisions_are_what_the_engine_serves() -> None:
    assert get_args(Precision) == get_args(LaunchPrecision)


def test_the_weights_secret_defaults_its_key_to_token_and_keeps_the_hosted_default() -> None:
    model = {**DEPLOYMENT["model"], "weightsSecretRef": {"name": "hf-token"}}  # type: ignore[dict-item]
    spec = InferenceDeploymentSpec.model_validate({**DEPLOYMENT, "model": model})
    assert spec.model.weights_secret_ref is not None
    assert spec.model.weights_secret_ref.key == "token"
    dumped = spec.model_dump(by_alias=True)["model"]["weightsSecretRef"]
    assert dumped == {"name": "hf-token", "key": "token"}
    assert InferenceDeploymentSpec.model_validate(DEPLOYMENT).model.weights_secret_ref is None
    hosted = HostedEndpointSpec.model_fields["secret_ref"].annotation
    assert SecretKeyRef in get_args(hosted) and SecretKeyRef(name="k").key == "api-key"


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ({"name": "HF_Token"}, "model.weightsSecretRef.name"),
        ({"name": ""}, "model.weightsSecretRef.name"),
        ({"name": "x" * 254}, "model.weightsSecretRef.name"),
        ({"name": 7}, "model.weightsSecretRef.name"),
        ({"key": "token"}, "model.weightsSecretRef.name"),  # name is required
        ({"name": "hf", "key": "has space"}, "model.weightsSecretRef.key"),
        ({"name": "hf", "key": ""}, "model.weightsSecretRef.key"),
        ({"name": "hf", "key": "../token"}, "model.weightsSecretRef.key"),
        ({"name": "hf", "value": "hf_abc"}, "model.weightsSecretRef.value"),  # no inline token
        ("hf-token", "model.weightsSecretRef"),
    ],
)
def test_a_bad_weights_secret_is_refused_naming_the_field(ref: object, field: str) -> None:
    model = {**DEPLOYMENT["model"], "weightsSecretRef": ref}  # type: ignore[dict-item]
    with pytest.raises(ValidationError) as caught:
        InferenceDeploymentSpec.model_validate({**DEPLOYMENT, "model": model})
    assert f"  {field}: " in describe_validation_error("deployment", caught.value)
