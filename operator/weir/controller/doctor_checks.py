"""`weir doctor`'s judgement: facts about a cluster in, findings in plain words out.

Pure, so each check is unit-tested on facts made by hand; `weir.controller.doctor`
gathers the facts (API server, Prometheus, the hosted endpoints) and prints the
findings. A finding names what it looked at, says whether it is fine, and when
not, what is wrong and what to do, in words an SRE acts on without reading code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec, SecretKeyRef
from weir.controller.optin import SECRET_OPT_IN, WEIGHTS_OPT_IN, names


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    ok: bool
    message: str


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect)
    gpus: int
    ready: bool


@dataclass(frozen=True)
class DeploymentFacts:
    namespace: str
    name: str
    spec: InferenceDeploymentSpec | None
    problem: str | None  # why the spec does not validate
    ready_routers: int
    ready_engines: Mapping[str, int]  # pool -> ready engine pods
    last_decision_age_s: float | None


@dataclass(frozen=True)
class Facts:
    """What `weir doctor` saw."""

    crds: Mapping[str, str]  # CRD name -> "ok" | what is wrong
    nodes: tuple[Node, ...]
    pools: Mapping[str, CapacityPoolSpec | str]  # name -> spec | why it does not validate
    hosted: Mapping[tuple[str, str], HostedEndpointSpec | str]
    # (ns, name) -> keys present, of the Secrets endpoints and deployments name
    secrets: Mapping[tuple[str, str], frozenset[str]]
    deployments: tuple[DeploymentFacts, ...]
    prometheus: str  # "ok" | what is wrong
    router_series: frozenset[tuple[str, str]] = frozenset()  # (ns, deployment)
    engine_series: frozenset[tuple[str, str, str]] = frozenset()  # (ns, deployment, pool)
    reachable: Mapping[str, str] = field(default_factory=dict)  # base URL -> "ok" | why not
    # (ns, name) -> annotations of the Secrets named (the opt-ins), no values
    secret_annotations: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)


def _tolerates(pool: CapacityPoolSpec, taint: tuple[str, str, str]) -> bool:
    key, value, effect = taint
    if effect == "PreferNoSchedule":
        return True
    return any(
        t.key == key
        and (t.operator == "Exists" or t.value == value)
        and (not t.effect or t.effect == effect)
        for t in pool.tolerations
    )


def matching_nodes(pool: CapacityPoolSpec, nodes: Sequence[Node]) -> list[Node]:
    """Nodes an engine pod of `pool` may land on: selector matches, every taint tolerated."""
    return [
        n
        for n in nodes
        if all(n.labels.get(k) == v for k, v in pool.node_selector.items())
        and all(_tolerates(pool, t) for t in n.taints)
    ]


def check_crds(facts: Facts) -> list[Finding]:
    return [
        Finding(
            "CRD",
            name,
            state == "ok",
            "installed, this version's schema" if state == "ok" else state,
        )
        for name, state in sorted(facts.crds.items())
    ]


def check_pools(facts: Facts) -> list[Finding]:
    found = []
    for name, pool in sorted(facts.pools.items()):
        if isinstance(pool, str):
            found.append(Finding("pool", name, False, pool))
            continue
        nodes = matching_nodes(pool, facts.nodes)
        usable = [n for n in nodes if n.ready and n.gpus >= pool.gpus_per_replica]
        if not usable:
            selector = ", ".join(f"{k}={v}" for k, v in sorted(pool.node_selector.items()))
            found.append(
                Finding(
                    "pool",
                    name,
                    False,
                    f"no Ready node with {pool.gpus_per_replica} GPU(s) matches nodeSelector "
                    f"{{{selector}}} and tolerates its taints ({len(facts.nodes)} nodes looked at):"
                    " engine pods would stay Pending; fix the selector or the node labels",
                )
            )
            continue
        gpus = sum(n.gpus for n in usable)
        price = pool.dollars_per_gpu_hour
        ok = price > 0
        message = f"{len(usable)} node(s), {gpus} GPUs, ${price:.2f}/GPU-h, {pool.capacity_type}"
        found.append(Finding("pool", name, ok, message if ok else f"{message}: price not set"))
    return found


def _secret_finding(
    facts: Facts,
    check: str,
    ns: str,
    name: str,
    ref: SecretKeyRef,
    opt_in: tuple[str, str],
    then: str = "",
) -> Finding:
    """Whether the Secret `ref` names exists in `ns`, holds its key and opts in (names only,
    no values): `opt_in` is the annotation and the name it must list, as the operator
    checks before it uses the Secret. `then` says what the fault breaks."""
    subject, secret = f"{ns}/{name}", f"Secret {ns}/{ref.name}"
    keys = facts.secrets.get((ns, ref.name))
    if keys is None:
        return Finding(check, subject, False, f"{secret} does not exist{then}")
    if ref.key not in keys:
        return Finding(check, subject, False, f"{secret} has no key {ref.key}{then}")
    annotation, user = opt_in
    if not names(facts.secret_annotations.get((ns, ref.name)), annotation, user):
        return Finding(
            check,
            subject,
            False,
            f"{secret} does not name {user} in its annotation {annotation}: the operator "
            f"refuses to use it (InvalidReference){then}; annotate it {annotation}={user}",
        )
    return Finding(check, subject, True, f"{secret} has {ref.key} and names {user}")


def check_hosted(facts: Facts) -> list[Finding]:
    found = []
    for (ns, name), hosted in sorted(facts.hosted.items()):
        subject = f"{ns}/{name}"
        if isinstance(hosted, str):
            found.append(Finding("hosted", subject, False, hosted))
            continue
        if hosted.secret_ref is None:
            found.append(Finding("hosted key", subject, True, "no key needed"))
        else:
            opt_in = (SECRET_OPT_IN, name)
            found.append(_secret_finding(facts, "hosted key", ns, name, hosted.secret_ref, opt_in))
        state = facts.reachable.get(hosted.base_url, "not tried")
        prices = hosted.dollars_per_million_output_tokens > 0
        ok = state == "ok" and prices
        message = f"{hosted.base_url} answers" if state == "ok" else f"{hosted.base_url}: {state}"
        found.append(Finding("hosted", subject, ok, message if prices else f"{message}; no price"))
    return found


def _deployment(facts: Facts, d: DeploymentFacts) -> list[Finding]:
    subject = f"{d.namespace}/{d.name}"
    if d.spec is None:
        return [Finding("deployment", subject, False, d.problem or "spec does not validate")]
    found = []
    missing = [b.pool for b in d.spec.pools if b.pool not in facts.pools]
    if d.spec.hosted is not None and (d.namespace, d.spec.hosted.endpoint) not in facts.hosted:
        missing.append(f"HostedEndpoint {d.spec.hosted.endpoint}")
    if missing:
        found.append(
            Finding("deployment", subject, False, f"refers to missing {', '.join(missing)}")
        )
    weights = d.spec.model.weights_secret_ref
    if weights is not None:
        then = ": engine pods cannot start (CreateContainerConfigError)"
        opt_in = (WEIGHTS_OPT_IN, d.name)
        found.append(_secret_finding(facts, "weights", d.namespace, d.name, weights, opt_in, then))
    if d.last_decision_age_s is None or d.last_decision_age_s > 3 * d.spec.control.period_seconds:
        age = "never" if d.last_decision_age_s is None else f"{d.last_decision_age_s:.0f} s ago"
        found.append(
            Finding("operator", subject, False, f"last decision {age}: is an operator running?")
        )
    else:
        found.append(
            Finding("operator", subject, True, f"decided {d.last_decision_age_s:.0f} s ago")
        )
    if facts.prometheus != "ok":
        return found
    if d.ready_routers and (d.namespace, d.name) not in facts.router_series:
        found.append(
            Finding(
                "metrics",
                subject,
                False,
                f"{d.ready_routers} router pod(s) Ready but Prometheus has no weir_router_* series "
                "labelled namespace/weir_dev_deployment for it: the router is not scraped (or "
                "relabelled differently); the operator holds the fleet until it is",
            )
        )
    for pool, ready in sorted(d.ready_engines.items()):
        if ready and (d.namespace, d.name, pool) not in facts.engine_series:
            found.append(
                Finding(
                    "metrics",
                    f"{subject} {pool}",
                    False,
                    f"{ready} engine pod(s) Ready but no trtllm_* series with weir_dev_pool={pool}:"
                    " capacity cannot be learned from them",
                )
            )
    if not any(f.check == "metrics" for f in found):
        found.append(Finding("metrics", subject, True, "router and engine series present"))
    return found


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, in the order a person would fix them."""
    prometheus = [Finding("prometheus", "query API", facts.prometheus == "ok", facts.prometheus)]
    deployments = [f for d in facts.deployments for f in _deployment(facts, d)]
    return [
        *check_crds(facts),
        *prometheus,
        *check_pools(facts),
        *check_hosted(facts),
        *deployments,
    ]


def summary(findings: Sequence[Finding]) -> dict[str, Any]:
    bad = [f for f in findings if not f.ok]
    return {"checks": len(findings), "problems": len(bad)}
