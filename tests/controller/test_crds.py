"""The CRDs: generated from the models, structural, fresh in crds/, enforced by the API server."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from support.operator import install_crds
from weir.api.crd import crd_manifest, model_schema, structural
from weir.api.resources import DEFINITIONS
from weir.controller.crds import chart_files, stale_files
from weir_lab.cluster.toolchain import ensure

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "llama-3.1-8b.yaml"


def walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk(value)
    elif isinstance(node, list):
        for value in node:
            found += walk(value)
    return found


def test_committed_crds_match_the_models():
    assert stale_files(REPO / "crds") == [], "run `weir crds` and commit crds/"
    chart = REPO / "charts" / "weir" / "crds"
    assert stale_files(chart, chart_files()) == [], "run `weir crds` and commit the chart's crds/"


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d.kind)
def test_schemas_are_structural(definition):
    schema = crd_manifest(definition)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "prefixItems" not in node
        assert not ("properties" in node and "additionalProperties" in node)
        assert isinstance(node.get("exclusiveMinimum", True), bool)
        if "properties" in node:
            assert node["type"] == "object"


def test_optional_fields_become_nullable_and_exclusive_bounds_boolean():
    node = structural(
        {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}],
            "default": None,
            "title": "X",
        }
    )
    assert node == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True}


def test_descriptions_reach_the_schema():
    spec = model_schema(DEFINITIONS[0].spec_model)
    assert "Pools it may use" in spec["properties"]["pools"]["description"]


@pytest.fixture(scope="module")
def crds_installed(cluster):
    install_crds(cluster.api)
    return cluster


def example_objects() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]


def kubectl(cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tools = ensure(cluster.settings.e2e_dir, build=False)
    return subprocess.run(
        [str(tools.kubectl), f"--kubeconfig={cluster.settings.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_example_is_accepted_and_listed_with_columns(crds_installed, namespace):
    docs = example_objects()
    for doc in docs:
        if doc["kind"] != "CapacityPool":
            doc["metadata"]["namespace"] = namespace
    text = yaml.safe_dump_all(docs)
    applied = kubectl(crds_installed, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    created = kubectl(
        crds_installed,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(
            [d for d in docs if d["kind"] in ("InferenceDeployment", "HostedEndpoint", "Secret")]
        ),
    )
    assert created.returncode == 0, created.stderr
    table = kubectl(crds_installed, "get", "idep", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header[:7] == ["NAME", "READY", "ON-DEMAND", "SPOT", "HOSTED", "$/M-USEFUL", "USEFUL"]
    explain = kubectl(crds_installed, "explain", "inferencedeployment.spec.slo.ttftSeconds")
    assert "Time to first token target" in explain.stdout


def deployment_body(namespace: str) -> dict[str, Any]:
    doc = next(d for d in example_objects() if d["kind"] == "InferenceDeployment")
    doc["metadata"]["namespace"] = namespace
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("slo", "ttftSeconds"), -1, "spec.slo.ttftSeconds"),
        (("slo", "percentile"), 100, "spec.slo.percentile"),
        (("control", "mode"), "yolo", "spec.control.mode"),
        (("pools",), [], "spec.pools"),
        (("hosted", "maxShare"), 1.5, "spec.hosted.maxShare"),
        (("model", "tensorParallel"), "two", "spec.model.tensorParallel"),
        (("pools", 0, "minReplicas"), 9, "spec.pools[0].minReplicas"),
        (("pools", 1, "pool"), "h100-on-demand", "spec.pools[1]"),
        (("hosted", "maxDollarsPerHour"), 100, "spec.hosted.maxDollarsPerHour"),
        (("control", "staleAfterSeconds"), 5, "spec.control.staleAfterSeconds"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(crds_installed, path, value, field):
    body = deployment_body("default")
    target = body["spec"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    accepted, message = server_dry_run(crds_installed, body)
    assert not accepted
    assert field in message


def server_dry_run(cluster, body: dict[str, Any]) -> tuple[bool, str]:
    """Whether the API server would store `body`, and its message when not."""
    api = client.CustomObjectsApi(cluster.api)
    definition = next(d for d in DEFINITIONS if d.kind == body["kind"])
    try:
        if definition.namespaced:
            api.create_namespaced_custom_object(
                "weir.dev", "v1alpha1", "default", definition.plural, body, dry_run="All"
            )
        else:
            api.create_cluster_custom_object(
                "weir.dev", "v1alpha1", definition.plural, body, dry_run="All"
            )
    except ApiException as exc:
        if exc.status != 422:
            raise
        return False, str(json.loads(exc.body)["message"])
    return True, ""


def leaves(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, (*prefix, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in leaves(v, (*prefix, i))]
    return [prefix]


CRD_DOCS = [d for d in example_objects() if d["apiVersion"].startswith("weir.dev/")]
MUTATIONS = [(i, path) for i, doc in enumerate(CRD_DOCS) for path in leaves(doc["spec"])]
VALUES = st.one_of(
    st.integers(min_value=-5, max_value=20_000),
    st.floats(min_value=-10, max_value=20_000, allow_nan=False).filter(lambda x: x != int(x)),
    st.sampled_from(["", "spot", "on-demand", "recommend", "enforce", "x", "NoSchedule"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutation=st.sampled_from(MUTATIONS), value=VALUES)
def test_api_server_and_models_agree_on_what_is_valid(crds_installed, mutation, value):
    index, path = mutation
    body = copy.deepcopy(CRD_DOCS[index])
    body["metadata"]["namespace"] = "default"
    body["metadata"]["name"] = f"agree-{uuid.uuid4().hex[:8]}"  # dry run: never stored
    target = body["spec"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    definition = next(d for d in DEFINITIONS if d.kind == body["kind"])
    try:
        definition.spec_model.model_validate(body["spec"])
        model_accepts = True
    except ValidationError:
        model_accepts = False
    server_accepts, message = server_dry_run(crds_installed, body)
    assert model_accepts == server_accepts, f"{body['kind']} {path}={value!r}: {message}"


def spec_schema(kind: str) -> dict[str, Any]:
    definition = next(d for d in DEFINITIONS if d.kind == kind)
    root = crd_manifest(definition)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def unbounded(node: Any, path: str = "spec") -> list[str]:
    """Leaves of a schema the API server would take at any size."""
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    found = []
    if kind == "string" and "enum" not in node and "maxLength" not in node:
        found.append(f"{path}: string without maxLength")
    if kind in ("number", "integer") and "maximum" not in node:
        found.append(f"{path}: number without maximum")
    if kind == "array" and "maxItems" not in node:
        found.append(f"{path}: array without maxItems")
    if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
        found.append(f"{path}: map without maxProperties")
    for name, sub in node.get("properties", {}).items():
        found += unbounded(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        found += unbounded(node.get(key), f"{path}.{key}")
    return found


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d.kind)
def test_every_spec_field_is_bounded_in_the_schema(definition):
    assert unbounded({"properties": {"a": {"type": "string"}}}) == [
        "spec.a: string without maxLength"
    ]
    assert unbounded(spec_schema(definition.kind)["properties"]["spec"]) == []


@pytest.mark.parametrize(
    ("kind", "path", "bounds"),
    [
        ("InferenceDeployment", ("model", "name"), {"maxLength": 256, "pattern": ...}),
        ("InferenceDeployment", ("model", "engineImage"), {"maxLength": 512, "pattern": ...}),
        ("InferenceDeployment", ("model", "precision"), {"enum": ...}),
        ("InferenceDeployment", ("model", "tensorParallel"), {"maximum": 8}),
        ("InferenceDeployment", ("cost", "budgetDollarsPerHour"), {"maximum": 1_000_000}),
        ("InferenceDeployment", ("pools", "items", "pool"), {"maxLength": 63, "pattern": ...}),
        ("InferenceDeployment", ("hosted", "endpoint"), {"maxLength": 63, "pattern": ...}),
        ("InferenceDeployment", ("pools",), {"maxItems": 16}),
        ("CapacityPool", ("gpuType",), {"maxLength": 63, "pattern": ...}),
        ("CapacityPool", ("maxGpus",), {"maximum": 1_000_000}),
        ("CapacityPool", ("nodeSelector",), {"maxProperties": 32}),
        ("CapacityPool", ("nodeSelector", "additionalProperties"), {"maxLength": 63}),
        ("CapacityPool", ("tolerations", "items", "key"), {"maxLength": 317, "pattern": ...}),
        ("CapacityPool", ("tolerations", "items", "value"), {"maxLength": 63, "pattern": ...}),
        ("HostedEndpoint", ("model",), {"maxLength": 256, "pattern": ...}),
        ("HostedEndpoint", ("baseUrl",), {"maxLength": 2048, "pattern": ...}),
        ("HostedEndpoint", ("requestsPerMinute",), {"maximum": 1_000_000}),
        ("HostedEndpoint", ("secretRef", "name"), {"maxLength": 253, "pattern": ...}),
        ("HostedEndpoint", ("secretRef", "key"), {"maxLength": 253, "pattern": ...}),
    ],
)
def test_schema_carries_the_bounds(kind, path, bounds):
    node = spec_schema(kind)["properties"]["spec"]
    for step in path:
        node = node[step] if step in ("items", "additionalProperties") else node["properties"][step]
    for key, value in bounds.items():
        assert key in node, f"{kind} {'.'.join(path)} lacks {key}"
        if value is not ...:
            assert node[key] == value


def rules(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def test_names_map_keys_and_cross_field_rules_are_cel():
    for definition in DEFINITIONS:
        (rule,) = rules(spec_schema(definition.kind))
        assert "self.metadata.name.size() <= 63" in rule and "matches(" in rule
    pool = spec_schema("CapacityPool")["properties"]["spec"]["properties"]
    (keys,) = rules(pool["nodeSelector"])
    assert keys.startswith("self.all(k, ") and "size(k) <= 317" in keys
    assert "self.operator != 'Exists'" in rules(pool["tolerations"]["items"])[0]
    deployment = spec_schema("InferenceDeployment")["properties"]["spec"]
    assert any("self.pools.exists(p, p.maxReplicas > 0)" in r for r in rules(deployment))


def test_patterns_read_the_same_in_pydantic_and_the_schema():
    """The schema's pattern is the model's: what one refuses, so does the other."""
    import re

    node = spec_schema("CapacityPool")["properties"]["spec"]["properties"]["tolerations"]
    pattern = node["items"]["properties"]["key"]["pattern"]
    for key, ok in [("weir.dev/pool", True), ("a b", False), ("x" * 64, False), ("-a", False)]:
        assert (re.fullmatch(pattern[1:-1], key) is not None and len(key) <= 317) == ok
        raw = {"gpuType": "H100", "gpusPerReplica": 1, "dollarsPerGpuHour": 1.0,
               "coldStartSeconds": 1, "tolerations": [{"key": key}]}  # fmt: skip
        try:
            definition = next(d for d in DEFINITIONS if d.kind == "CapacityPool")
            definition.spec_model.model_validate(raw)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == ok
