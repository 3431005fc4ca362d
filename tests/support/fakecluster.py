"""A recording fake of the operator's cluster port, for unit tests of the control loop.

It holds InferenceDeployments, CapacityPools, HostedEndpoints and the children
applied, records every call, and can be told to fail the next call of a kind
(as Karpenter's fake cloud provider takes the next error). Engine Deployments
report their replicas as ready at once unless `warming` says otherwise, the
way a Deployment controller with instant pods would.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.controller.children import InvalidReferenceError
from weir.controller.port import (
    ApplyResult,
    ClusterError,
    Drained,
    EventType,
    OwnerRef,
    References,
)


@dataclass
class Event:
    name: str
    kind: EventType
    reason: str
    message: str


@dataclass
class FakeCluster:
    """`ClusterPort` in memory."""

    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, CapacityPoolSpec] = field(default_factory=dict)
    hosted: dict[tuple[str, str], HostedEndpointSpec] = field(default_factory=dict)
    # (namespace, owner) -> the manifests last applied
    children: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # (namespace, Deployment name) -> replicas not ready yet
    warming: dict[tuple[str, str], int] = field(default_factory=dict)
    # node -> engine pods on it, as (namespace, deployment, pod)
    nodes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    # (namespace, name) -> data of the Secrets the operator created
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # (namespace, Secret) -> the InferenceDeployments its opt-in annotation names
    weights_readers: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _fail: dict[str, ClusterError] = field(default_factory=dict)

    # -- test controls -----------------------------------------------------
    def fail_next(self, method: str, error: ClusterError) -> None:
        """The next call of `method` raises `error` (once)."""
        self._fail[method] = error

    def _call(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        error = self._fail.pop(method, None)
        if error is not None:
            raise error

    def add(self, namespace: str, name: str, spec: InferenceDeploymentSpec) -> dict[str, Any]:
        body = {
            "apiVersion": "weir.dev/v1alpha1",
            "kind": "InferenceDeployment",
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": f"uid-{name}",
                "generation": 1,
            },
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        self.deployments[(namespace, name)] = body
        return body

    def engine_replicas(self, namespace: str, owner: str) -> dict[str, int]:
        """Replicas of each engine Deployment last applied, by pool label."""
        out = {}
        for m in self.children.get((namespace, owner), []):
            labels = m["metadata"].get("labels") or {}
            if m["kind"] == "Deployment" and labels.get("weir.dev/component") == "engine":
                out[labels["weir.dev/pool"]] = int(m["spec"]["replicas"])
        return out

    def called(self, method: str) -> int:
        return sum(1 for c in self.calls if c[0] == method)

    # -- the port ----------------------------------------------------------
    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("read_deployment", namespace, name)
        body = self.deployments.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    def read_references(self, namespace: str, spec: InferenceDeploymentSpec) -> References:
        self._call("read_references", namespace)
        pools = {b.pool: self.pools[b.pool] for b in spec.pools if b.pool in self.pools}
        hosted = None
        if spec.hosted is not None:
            hosted = self.hosted.get((namespace, spec.hosted.endpoint))
        return pools, hosted

    def _observed(self, namespace: str, owner: str) -> dict[tuple[str, str], dict[str, Any]]:
        seen = {}
        for m in self.children.get((namespace, owner), []):
            if m["kind"] != "Deployment":
                continue
            name = m["metadata"]["name"]
            want = int(m["spec"].get("replicas") or 0)
            warming = min(want, self.warming.get((namespace, name), 0))
            seen[("Deployment", name)] = {"replicas": want, "readyReplicas": want - warming}
        return seen

    def apply_children(
        self,
        namespace: str,
        owner: str,
        owner_uid: str,
        manifests: Sequence[dict[str, Any]],
        prune: bool = True,
    ) -> ApplyResult:
        self._call("apply_children", namespace, owner, "prune" if prune else "no-prune")
        before = {
            (m["kind"], m["metadata"]["name"]) for m in self.children.get((namespace, owner), [])
        }
        self.children[(namespace, owner)] = copy.deepcopy(list(manifests))
        kept = {(m["kind"], m["metadata"]["name"]) for m in manifests}
        pruned = tuple(sorted(f"{k}/{n}" for k, n in before - kept)) if prune else ()
        return ApplyResult(len(manifests), pruned, self._observed(namespace, owner))

    def observe_children(self, namespace: str, owner: str) -> ApplyResult:
        self._call("observe_children", namespace, owner)
        return ApplyResult(0, (), self._observed(namespace, owner))

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._call("write_status", namespace, name)
        body = self.deployments.get((namespace, name))
        if body is None:
            raise ClusterError(f"InferenceDeployment {namespace}/{name} not found", False)
        merged = dict(body.get("status") or {})
        merged.update(copy.deepcopy(status))
        body["status"] = merged

    def check_weights_secret(self, namespace: str, owner: str, secret: str) -> None:
        self._call("check_weights_secret", namespace, secret)
        if (namespace, secret) not in self.secrets:
            raise InvalidReferenceError(f"model.weightsSecretRef: Secret {secret} not found")
        if owner not in self.weights_readers.get((namespace, secret), ()):
            raise InvalidReferenceError(
                f"model.weightsSecretRef: Secret {secret} does not allow {owner}"
            )

    def ensure_secret(self, namespace: str, name: str, owner: OwnerRef, key: str) -> bool:
        self._call("ensure_secret", namespace, name)
        if (namespace, name) in self.secrets:
            return False
        self.secrets[(namespace, name)] = {key: f"token-of-{owner.name}"}
        return True

    def event(self, body: Mapping[str, Any], kind: EventType, reason: str, message: str) -> None:
        self.calls.append(("event", reason))
        self.events.append(Event(str(body["metadata"]["name"]), kind, reason, message))

    def drain_node(self, node: str) -> list[Drained]:
        self._call("drain_node", node)
        grouped: dict[tuple[str, str], list[str]] = {}
        for namespace, deployment, pod in self.nodes.pop(node, []):
            grouped.setdefault((namespace, deployment), []).append(pod)
        return [Drained(ns, dep, tuple(sorted(p))) for (ns, dep), p in grouped.items()]
