"""The operator's one narrow edge to the cluster, so its loop can be tested without one.

Everything the control loop and the reconcile pass ask of Kubernetes goes
through `ClusterPort`: read an InferenceDeployment, read what it refers to,
apply (and prune) its children, observe them, write status, post an event,
drain a node. The real implementation (`weir.controller.kube.KubeCluster`)
speaks to the API server; tests use a recording fake that can be told to
fail the next call (as Karpenter's fake cloud provider does), so restarts,
resyncs, failed applies and spot notices are unit-tested in milliseconds.

Calls are synchronous (the official client is); the async loop runs them in
worker threads. Every failure is a `ClusterError` that says whether a retry
may help, translated at the boundary from the client's own exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec


class ClusterError(RuntimeError):
    """A call to the cluster failed; `temporary` says whether a retry may help."""

    def __init__(self, message: str, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass(frozen=True)
class ApplyResult:
    """What an apply (or a read of the children) found."""

    applied: int
    pruned: tuple[str, ...]
    # (kind, name) -> the object's status as the API server returned it
    observed: dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class Drained:
    """Engine pods weir moved traffic off, grouped by their InferenceDeployment."""

    namespace: str
    deployment: str
    pods: tuple[str, ...]


References = tuple[dict[str, CapacityPoolSpec], HostedEndpointSpec | None]


@dataclass(frozen=True)
class OwnerRef:
    """The InferenceDeployment a created object belongs to (garbage-collected with it)."""

    name: str
    uid: str


EventType = Literal["Normal", "Warning"]


class ClusterPort(Protocol):
    """What the operator's loop needs from Kubernetes, and nothing more."""

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceDeployment's body; None when it is gone."""
        ...

    def read_references(self, namespace: str, spec: InferenceDeploymentSpec) -> References:
        """The pools (only those that exist) and the hosted endpoint the spec names.

        An invalid referenced object raises `InvalidReferenceError` (its message
        names the field); the caller compares counts to find missing ones.
        """
        ...

    def apply_children(
        self,
        namespace: str,
        owner: str,
        owner_uid: str,
        manifests: Sequence[dict[str, Any]],
        prune: bool = True,
    ) -> ApplyResult:
        """Server-side apply every manifest, then (with `prune`) delete the owner's children
        not in it."""
        ...

    def observe_children(self, namespace: str, owner: str) -> ApplyResult:
        """The owner's engine Deployments' status, applying nothing."""
        ...

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the InferenceDeployment's status subresource."""
        ...

    def check_weights_secret(self, namespace: str, owner: str, secret: str) -> None:
        """Refuse (InvalidReferenceError) a weights Secret that is missing or whose opt-in
        annotation does not name the InferenceDeployment `owner`; reads metadata only."""
        ...

    def ensure_secret(self, namespace: str, name: str, owner: OwnerRef, key: str) -> bool:
        """Create the Secret `name` with a fresh random token under `key` unless it exists
        (never overwritten: clients hold its token); True when it was created."""
        ...

    def event(self, body: Mapping[str, Any], kind: EventType, reason: str, message: str) -> None:
        """Post an event about the object `body` (best effort: never raises)."""
        ...

    def drain_node(self, node: str) -> list[Drained]:
        """Delete weir's engine pods on `node`, each with its pool's notice as grace period."""
        ...
