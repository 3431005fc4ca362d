"""`weir doctor`'s checks, each on facts that break one thing (pure, no cluster)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

from kubernetes.client.exceptions import ApiException

from controller.test_control import example
from weir.api import WeightsSecretRef
from weir.controller.doctor import _secrets
from weir.controller.doctor_checks import DeploymentFacts, Facts, Node, diagnose, matching_nodes
from weir.controller.optin import SECRET_OPT_IN, WEIGHTS_OPT_IN

NS = "team-a"
WEIGHTS = WeightsSecretRef(name="hf-token")


def _healthy() -> Facts:
    spec, pools, hosted = example()
    model = spec.model.model_copy(update={"weights_secret_ref": WEIGHTS})
    spec = spec.model_copy(update={"model": model})
    nodes = tuple(
        Node(
            f"{pool}-0",
            dict(p.node_selector),
            tuple((t.key, t.value or "true", t.effect or "NoSchedule") for t in p.tolerations),
            8,
            True,
        )
        for pool, p in pools.items()
    )
    deployment = DeploymentFacts(NS, "llm", spec, None, 1, {b.pool: 1 for b in spec.pools}, 5.0)
    secret = hosted.secret_ref
    return Facts(
        crds={"inferencedeployments.weir.dev": "ok"},
        nodes=nodes,
        pools=pools,
        hosted={(NS, spec.hosted.endpoint): hosted},
        secrets={
            (NS, WEIGHTS.name): frozenset({"token", "other"}),
            **({(NS, secret.name): frozenset({secret.key})} if secret else {}),
        },
        deployments=(deployment,),
        prometheus="ok",
        router_series=frozenset({(NS, "llm")}),
        engine_series=frozenset((NS, "llm", b.pool) for b in spec.pools),
        reachable={hosted.base_url: "ok"},
        secret_annotations={
            (NS, WEIGHTS.name): {WEIGHTS_OPT_IN: "other, llm"},
            **({(NS, secret.name): {SECRET_OPT_IN: spec.hosted.endpoint}} if secret else {}),
        },
    )


def _failures(facts: Facts) -> list[str]:
    return [f"{f.check} {f.subject}: {f.message}" for f in diagnose(facts) if not f.ok]


def test_a_healthy_cluster_is_all_green():
    facts = _healthy()
    assert _failures(facts) == []
    weights = [f for f in diagnose(facts) if f.check == "weights"]
    assert [(w.subject, w.message) for w in weights] == [
        (f"{NS}/llm", f"Secret {NS}/hf-token has token and names llm")
    ]


def test_a_pool_with_no_matching_nodes_is_named():
    facts = _healthy()
    pool = next(iter(facts.pools))
    unlabelled = tuple(replace(n, labels={}) if n.name.startswith(pool) else n for n in facts.nodes)
    (failure,) = _failures(replace(facts, nodes=unlabelled))
    assert failure.startswith(f"pool {pool}: no Ready node") and "Pending" in failure


def test_taints_must_be_tolerated_and_gpus_enough():
    facts = _healthy()
    name, pool = next(iter(facts.pools.items()))
    tainted = tuple(
        replace(n, taints=(*n.taints, ("dedicated", "x", "NoSchedule"))) for n in facts.nodes
    )
    assert matching_nodes(pool, tainted) == []
    small = tuple(replace(n, gpus=0) for n in facts.nodes)
    assert any(f.startswith(f"pool {name}") for f in _failures(replace(facts, nodes=small)))


def test_a_missing_hosted_key_secret_is_named():
    facts = _healthy()
    hosted = next(iter(facts.hosted.values()))
    assert not isinstance(hosted, str) and hosted.secret_ref is not None
    secrets = {k: v for k, v in facts.secrets.items() if k != (NS, hosted.secret_ref.name)}
    (failure,) = _failures(replace(facts, secrets=secrets))
    assert failure.startswith("hosted key") and "does not exist" in failure


def test_a_missing_weights_secret_is_named():
    facts = _healthy()
    secrets = {k: v for k, v in facts.secrets.items() if k != (NS, WEIGHTS.name)}
    (failure,) = _failures(replace(facts, secrets=secrets))
    assert failure.startswith(f"weights {NS}/llm: Secret {NS}/hf-token does not exist")
    assert "engine pods cannot start" in failure


def test_a_weights_secret_without_the_key_is_named():
    facts = _healthy()
    secrets = {**facts.secrets, (NS, WEIGHTS.name): frozenset({"HF_TOKEN", "tokens"})}
    (failure,) = _failures(replace(facts, secrets=secrets))
    assert failure.startswith(f"weights {NS}/llm: Secret {NS}/hf-token has no key token")
    assert "HF_TOKEN" not in failure  # the key it wants, not the ones the Secret has


def test_a_secret_that_does_not_opt_in_is_named_with_the_annotation_to_add():
    """The operator refuses a Secret that does not name its user (InvalidReference); doctor
    says so first, and how to fix it, for the weights and the hosted key alike."""
    facts = _healthy()
    hosted = next(iter(facts.hosted.values()))
    assert not isinstance(hosted, str) and hosted.secret_ref is not None
    endpoint = next(iter(facts.hosted))[1]
    for key, (check, user, annotation) in {
        (NS, WEIGHTS.name): ("weights", "llm", WEIGHTS_OPT_IN),
        (NS, hosted.secret_ref.name): ("hosted key", endpoint, SECRET_OPT_IN),
    }.items():
        for wrong in ({}, {annotation: "llm-other"}, {"unrelated": user}):
            annotations = {**facts.secret_annotations, key: wrong}
            (failure,) = _failures(replace(facts, secret_annotations=annotations))
            assert failure.startswith(f"{check} ") and f"does not name {user}" in failure
            assert f"annotate it {annotation}={user}" in failure


def test_a_deployment_without_a_weights_secret_gets_no_weights_check():
    facts = _healthy()
    d = facts.deployments[0]
    assert d.spec is not None
    plain = d.spec.model_copy(
        update={"model": d.spec.model.model_copy(update={"weights_secret_ref": None})}
    )
    secrets = {k: v for k, v in facts.secrets.items() if k != (NS, WEIGHTS.name)}
    findings = diagnose(replace(facts, deployments=(replace(d, spec=plain),), secrets=secrets))
    assert [f for f in findings if not f.ok] == []
    assert not any(f.check == "weights" for f in findings)


def test_missing_router_series_for_a_ready_router_are_named():
    (failure,) = _failures(replace(_healthy(), router_series=frozenset()))
    assert failure.startswith(f"metrics {NS}/llm") and "not scraped" in failure


def test_missing_engine_series_name_the_pool():
    facts = _healthy()
    (failure,) = _failures(replace(facts, engine_series=frozenset(list(facts.engine_series)[1:])))
    assert "engine pod(s) Ready but no trtllm_* series" in failure


def test_no_operator_and_no_prometheus_are_named():
    facts = _healthy()
    stale = replace(facts.deployments[0], last_decision_age_s=None)
    failures = _failures(replace(facts, deployments=(stale,), prometheus="down: refused"))
    assert any(f.startswith("operator") and "is an operator running" in f for f in failures)
    assert any(f.startswith("prometheus") and "refused" in f for f in failures)


def test_an_unreachable_endpoint_and_a_stale_crd_are_named():
    facts = _healthy()
    url = next(iter(facts.reachable))
    failures = _failures(
        replace(
            facts,
            reachable={url: "does not answer (ConnectError)"},
            crds={"inferencedeployments.weir.dev": "schema of another weir version"},
        )
    )
    assert any("does not answer" in f for f in failures)
    assert any(f.startswith("CRD") and "another weir version" in f for f in failures)


class _Core:
    """read_namespaced_secret of a fake API server: records what was asked."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.secrets, self.asked = secrets, []

    def read_namespaced_secret(self, name, namespace, _preload_content=True):
        self.asked.append((namespace, name))
        if (namespace, name) not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        meta = {"name": name, "annotations": {WEIGHTS_OPT_IN: "llm"}}
        body = {"kind": "Secret", "metadata": meta, "data": self.secrets[(namespace, name)]}
        return SimpleNamespace(data=json.dumps(body).encode())


def test_doctor_keeps_the_key_names_and_opt_ins_of_each_named_secret_once_and_drops_the_values():
    core = _Core({(NS, "hf-token"): {"token": "aGZfc2VjcmV0"}, ("b", "k"): {}})
    keys, annotations = _secrets(core, {(NS, "hf-token"), ("b", "k"), (NS, "gone")})
    assert keys == {(NS, "hf-token"): frozenset({"token"}), ("b", "k"): frozenset()}
    assert annotations[(NS, "hf-token")] == {WEIGHTS_OPT_IN: "llm"}
    assert set(annotations) == set(keys)
    assert sorted(core.asked) == sorted([(NS, "hf-token"), ("b", "k"), (NS, "gone")])
    assert "aGZfc2VjcmV0" not in repr((keys, annotations))
