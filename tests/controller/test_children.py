"""The children of an InferenceDeployment, computed without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from support.k8srules import object_problems, restricted_problems
from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec, WeightsSecretRef
from weir.controller.children import (
    ChildSettings,
    Inputs,
    InvalidReferenceError,
    Owner,
    desired_children,
    dns_name,
)
from weir.controller.isolation import PrometheusPeer
from weir.controller.settings import OperatorSettings
from weir.router.config import RouterPolicy

REPO = Path(__file__).resolve().parents[2]
DOCS = [d for d in yaml.safe_load_all((REPO / "examples" / "llama-3.1-8b.yaml").read_text()) if d]
SPEC = InferenceDeploymentSpec.model_validate(
    next(d for d in DOCS if d["kind"] == "InferenceDeployment")["spec"]
)
POOLS = {
    d["metadata"]["name"]: CapacityPoolSpec.model_validate(d["spec"])
    for d in DOCS
    if d["kind"] == "CapacityPool"
}
HOSTED = HostedEndpointSpec.model_validate(
    next(d for d in DOCS if d["kind"] == "HostedEndpoint")["spec"]
)
OWNER = Owner("llama-8b", "serving", "uid-1")
POLICY = {
    "concurrencyLimitByPool": {"h100-spot": 16},
    "hostedEnabled": True,
    "maxHostedShare": 0.3,
    "maxHostedDollarsPerHour": 10.0,
    "maxWaiting": 64,
}


def children(**changes) -> dict[tuple[str, str], dict]:
    inputs = Inputs(OWNER, SPEC, POOLS, HOSTED, {"h100-on-demand": 2, "h100-spot": 3}, POLICY)
    for key, value in changes.items():
        inputs = Inputs(**{**inputs.__dict__, key: value})
    return {(c["kind"], c["metadata"]["name"]): c for c in desired_children(inputs)}


def test_one_engine_deployment_and_service_per_pool_placed_on_the_pool():
    objs = children()
    spot = objs[("Deployment", "llama-8b-h100-spot")]
    pod = spot["spec"]["template"]["spec"]
    assert spot["spec"]["replicas"] == 3
    assert pod["nodeSelector"] == {"weir.dev/pool": "h100-spot"}
    assert pod["tolerations"][0]["key"] == "weir.dev/capacity-type"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    service = objs[("Service", "llama-8b-h100-spot")]
    assert service["spec"]["selector"]["weir.dev/pool"] == "h100-spot"
    for obj in objs.values():
        assert obj["metadata"]["namespace"] == "serving"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_router_discovers_each_pool_and_reads_a_policy_it_accepts():
    objs = children()
    container = objs[("Deployment", "llama-8b-router")]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--discover-service=h100-spot=llama-8b-h100-spot" in args
    assert "--discover-service=h100-on-demand=llama-8b-h100-on-demand" in args
    assert "--hosted-key-file=/etc/weir/hosted/api-key" in args
    text = objs[("ConfigMap", "llama-8b-router")]["data"]["policy.json"]
    policy = RouterPolicy.model_validate(json.loads(text))
    assert policy.max_hosted_share == 0.3 and policy.concurrency_limit_by_pool == {"h100-spot": 16}
    assert "hosted-llm-key" not in text and "replace-me" not in text  # only the Secret's name
    volumes = objs[("Deployment", "llama-8b-router")]["spec"]["template"]["spec"]["volumes"]
    secret = next(v for v in volumes if "secret" in v)["secret"]
    assert secret["secretName"] == "hosted-llm-key"
    role = objs[("Role", "llama-8b-router")]
    assert role["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]


def test_engines_read_hf_token_from_the_named_secret_and_never_its_value():
    ref = WeightsSecretRef(name="hf-gated", key="hub-token")
    spec = SPEC.model_copy(
        update={"model": SPEC.model.model_copy(update={"weights_secret_ref": ref})}
    )
    objs = children(spec=spec)
    engines = {n: p for n, p in pods(objs).items() if n != "llama-8b-router"}
    assert set(engines) == {"llama-8b-h100-on-demand", "llama-8b-h100-spot"}
    for pod in engines.values():
        (token,) = [e for e in pod["containers"][0]["env"] if e["name"] == "HF_TOKEN"]
        assert token == {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-gated", "key": "hub-token"}},
        }
    router = pods(objs)["llama-8b-router"]["containers"][0]
    assert all(e["name"] != "HF_TOKEN" for e in router.get("env", []))
    for obj in objs.values():
        assert object_problems(obj) == [], obj["metadata"]["name"]
    # without the field, no engine gets a token
    for name, pod in pods(children()).items():
        assert all(e["name"] != "HF_TOKEN" for e in pod["containers"][0].get("env", [])), name


def test_replicas_default_to_the_pool_minimum():
    objs = children(replicas={})
    assert objs[("Deployment", "llama-8b-h100-on-demand")]["spec"]["replicas"] == 1
    assert objs[("Deployment", "llama-8b-h100-spot")]["spec"]["replicas"] == 0


def test_missing_references_touch_nothing_and_say_what_is_missing():
    with pytest.raises(InvalidReferenceError, match="CapacityPool h100-spot not found"):
        children(pools={"h100-on-demand": POOLS["h100-on-demand"]})
    with pytest.raises(InvalidReferenceError, match="HostedEndpoint hosted-llama not found"):
        children(hosted=None)


def test_long_names_stay_valid_and_distinct():
    a, b = dns_name("x" * 70, "spot"), dns_name("x" * 70, "od")
    assert len(a) <= 63 and len(b) <= 63 and a != b


def pods(objs: dict[tuple[str, str], dict]) -> dict[str, dict]:
    return {
        name: obj["spec"]["template"]["spec"]
        for (kind, name), obj in objs.items()
        if kind == "Deployment"
    }


def test_every_child_pod_meets_pod_security_restricted_with_a_read_only_root():
    found = pods(children())
    assert set(found) == {"llama-8b-h100-on-demand", "llama-8b-h100-spot", "llama-8b-router"}
    for name, pod in found.items():
        assert restricted_problems(pod, name) == []
        assert pod["securityContext"]["runAsUser"] != 0
        written = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert "/tmp" in written  # the read-only root leaves /tmp to an emptyDir
    engine = found["llama-8b-h100-spot"]["containers"][0]
    env = {e["name"]: e["value"] for e in engine["env"] if "value" in e}
    mounts = {m["mountPath"] for m in engine["volumeMounts"] if not m.get("readOnly")}
    assert env["HOME"] in mounts  # TensorRT-LLM's JIT and compile caches land in ~/.cache
    assert env["HF_HOME"].startswith("/tmp/")
    assert found["llama-8b-h100-spot"]["automountServiceAccountToken"] is False
    assert found["llama-8b-router"]["automountServiceAccountToken"] is True  # EndpointSlices


def test_the_checker_sees_a_pod_that_breaks_restricted():
    pod = pods(children())["llama-8b-router"]
    loose = {**pod, "containers": [{**pod["containers"][0], "securityContext": {}}]}
    problems = restricted_problems({**loose, "securityContext": {}, "hostNetwork": True})
    assert any("runAsNonRoot" in p for p in problems)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("hostNetwork" in p for p in problems)


def test_every_child_is_one_the_api_server_accepts_even_with_long_names():
    for objs in (children(), children(owner=Owner("l" * 63, "serving", "uid-1"))):
        for obj in objs.values():
            assert object_problems(obj) == [], obj["metadata"]["name"]


def test_a_name_the_router_service_cannot_carry_is_refused():
    with pytest.raises(InvalidReferenceError, match=r"metadata\.name"):
        children(owner=Owner("9-lives", "serving", "uid-1"))


def test_no_network_policy_unless_the_operator_is_told():
    assert not [kind for kind, _ in children() if kind == "NetworkPolicy"]


def test_engines_answer_only_their_router_and_prometheus():
    settings = ChildSettings(
        network_policy=True, prometheus=PrometheusPeer(pod_labels=(("app", "prom"),))
    )
    objs = children(settings=settings)
    engines, router = (
        objs[("NetworkPolicy", "llama-8b-engines")],
        objs[("NetworkPolicy", "llama-8b-router")],
    )
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prom"}},
    }
    mine = {"weir.dev/deployment": "llama-8b", "app.kubernetes.io/managed-by": "weir"}
    assert engines["spec"]["podSelector"] == {
        "matchLabels": {**mine, "weir.dev/component": "engine"}
    }
    (rule,) = engines["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {**mine, "weir.dev/component": "router"}}},
        prometheus,
    ]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    # the engine pods and the router pods carry the labels the policies select on
    for name, component in (("llama-8b-h100-spot", "engine"), ("llama-8b-router", "router")):
        labels = objs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert {**mine, "weir.dev/component": component}.items() <= labels.items()
    clients, scrape = router["spec"]["ingress"]
    assert clients == {"ports": [{"port": 8080, "protocol": "TCP"}]}  # from anyone
    assert scrape == {"from": [prometheus]}
    for policy in (engines, router):
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert object_problems(policy) == []


def test_router_pods_go_where_the_operator_is_told_and_nowhere_by_default():
    default = children()[("Deployment", "llama-8b-router")]["spec"]["template"]["spec"]
    assert "nodeSelector" not in default and "tolerations" not in default
    environ = {
        "WEIR_OPERATOR_ROUTER_NODE_SELECTOR": '{"weir.dev/node-role": "system"}',
        "WEIR_OPERATOR_ROUTER_TOLERATIONS": json.dumps(
            [{"key": "weir.dev/node-role", "value": "system", "effect": "NoSchedule"}]
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        settings = OperatorSettings()
    placed = children(settings=settings.child_settings())
    pod = placed[("Deployment", "llama-8b-router")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"weir.dev/node-role": "system"}
    assert pod["tolerations"] == [
        {"key": "weir.dev/node-role", "value": "system", "effect": "NoSchedule"}
    ]
    engine = placed[("Deployment", "llama-8b-h100-spot")]["spec"]["template"]["spec"]
    assert engine.get("tolerations") != pod["tolerations"]  # engines keep their pool's


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("WEIR_OPERATOR_ROUTER_NODE_SELECTOR", '{"bad key!": "x"}', "router_node_selector"),
        ("WEIR_OPERATOR_ROUTER_TOLERATIONS", '[{"key": "k", "operator": "Maybe"}]', "operator"),
        ("WEIR_OPERATOR_ROUTER_TOLERATIONS", '{"key": "k"}', "router_tolerations"),
    ],
)
def test_bad_router_placement_is_refused_naming_the_field(name, value, field, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=field):
        OperatorSettings()
