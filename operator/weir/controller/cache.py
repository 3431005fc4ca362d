"""A watch-fed cache in front of the cluster port: a warm control step reads nothing.

With a thousand InferenceDeployments, a step that reads its pools, its
endpoint and its children from the API server costs several round trips
each period, through a client shared by every daemon: the loop falls behind
(issue 17 measured one visit per ~113 s at a 15 s period). kopf already
watches what weir cares about; its event handlers (`weir.controller.handlers`)
feed this cache, and `CachedCluster` answers reads from it, going to the API
server only for what it has not seen yet (and then remembering it). Writes
(applies, status, events, drains) always go through.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.controller.children import InvalidReferenceError
from weir.controller.port import (
    ApplyResult,
    ClusterPort,
    Drained,
    EventType,
    OwnerRef,
    References,
)


@dataclass
class WatchCache:
    """What the watches have shown: specs by name, children's status by owner.

    A spec that did not validate is kept as its error message, so a step
    reports it (InvalidReference) without reading the object again.
    """

    pools: dict[str, CapacityPoolSpec | str] = field(default_factory=dict)
    hosted: dict[tuple[str, str], HostedEndpointSpec | str] = field(default_factory=dict)
    # (namespace, owner) -> Deployment name -> its status
    children: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Secrets known to exist (ensured once; their owner's deletion takes them)
    secrets: set[tuple[str, str]] = field(default_factory=set)
    # (namespace, endpoint) -> when its key Secret's opt-in was last checked (monotonic s)
    opt_in_checked: dict[tuple[str, str], float] = field(default_factory=dict)
    # (namespace, owner, Secret) -> when the weights Secret's opt-in was last found good
    weights_checked: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def pool_seen(self, name: str, spec: Mapping[str, Any] | None) -> None:
        """A CapacityPool event (spec None: deleted)."""
        if spec is None:
            self.pools.pop(name, None)
            return
        try:
            self.pools[name] = CapacityPoolSpec.model_validate(dict(spec))
        except ValidationError as exc:
            self.pools[name] = describe_validation_error(f"CapacityPool {name}", exc)

    def hosted_seen(self, namespace: str, name: str, spec: Mapping[str, Any] | None) -> None:
        """A HostedEndpoint event (spec None: deleted)."""
        if spec is None:
            self.hosted.pop((namespace, name), None)
            return
        try:
            self.hosted[(namespace, name)] = HostedEndpointSpec.model_validate(dict(spec))
        except ValidationError as exc:
            self.hosted[(namespace, name)] = describe_validation_error(
                f"HostedEndpoint {name}", exc
            )

    def child_seen(
        self, namespace: str, owner: str, name: str, status: Mapping[str, Any] | None
    ) -> None:
        """A child Deployment event (status None: deleted)."""
        children = self.children.setdefault((namespace, owner), {})
        if status is None:
            children.pop(name, None)
        else:
            children[name] = dict(status)


OPT_IN_RECHECK_S = 60.0


def _known(value: Any) -> Any:
    if isinstance(value, str):
        raise InvalidReferenceError(value)
    return value


class CachedCluster:
    """`ClusterPort` that reads from a `WatchCache` and falls back to `inner`."""

    def __init__(self, inner: ClusterPort, cache: WatchCache) -> None:
        self.inner = inner
        self.cache = cache

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.inner.read_deployment(namespace, name)

    def read_references(self, namespace: str, spec: InferenceDeploymentSpec) -> References:
        names = [b.pool for b in spec.pools]
        hosted_key = None if spec.hosted is None else (namespace, spec.hosted.endpoint)
        cached_all = all(n in self.cache.pools for n in names) and (
            hosted_key is None
            or (hosted_key in self.cache.hosted and self._opt_in_fresh(hosted_key))
        )
        if not cached_all:  # not seen yet (or really missing): ask, and remember
            pools, hosted = self.inner.read_references(namespace, spec)  # checks the opt-in
            self.cache.pools.update(pools)
            if hosted_key is not None and hosted is not None:
                self.cache.hosted[hosted_key] = hosted
                self.cache.opt_in_checked[hosted_key] = time.monotonic()
            return pools, hosted
        found = {n: _known(self.cache.pools[n]) for n in names}
        endpoint = None if hosted_key is None else _known(self.cache.hosted[hosted_key])
        return found, endpoint

    def _opt_in_fresh(self, key: tuple[str, str]) -> bool:
        """Whether the endpoint's key Secret was checked lately: the watch sees endpoints,
        not Secrets, so a withdrawn opt-in is noticed within OPT_IN_RECHECK_S."""
        hosted = self.cache.hosted.get(key)
        if not isinstance(hosted, HostedEndpointSpec) or hosted.secret_ref is None:
            return True
        checked = self.cache.opt_in_checked.get(key)
        return checked is not None and time.monotonic() - checked < OPT_IN_RECHECK_S

    def apply_children(
        self,
        namespace: str,
        owner: str,
        owner_uid: str,
        manifests: Sequence[dict[str, Any]],
        prune: bool = True,
    ) -> ApplyResult:
        result = self.inner.apply_children(namespace, owner, owner_uid, manifests, prune)
        children = self.cache.children.setdefault((namespace, owner), {})
        for (kind, name), status in result.observed.items():
            if kind == "Deployment":
                children[name] = dict(status)
        return result

    def observe_children(self, namespace: str, owner: str) -> ApplyResult:
        children = self.cache.children.get((namespace, owner))
        if not children:
            result = self.inner.observe_children(namespace, owner)
            self.cache.children[(namespace, owner)] = {
                name: dict(status) for (kind, name), status in result.observed.items()
            }
            return result
        observed = {("Deployment", name): dict(status) for name, status in children.items()}
        return ApplyResult(0, (), observed)

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.inner.write_status(namespace, name, status)

    def check_weights_secret(self, namespace: str, owner: str, secret: str) -> None:
        """Asked again once OPT_IN_RECHECK_S has passed (Secrets are not watched), and at
        once after a refusal: only a good answer is remembered (a refusal raises first)."""
        key = (namespace, owner, secret)
        checked = self.cache.weights_checked.get(key)
        if checked is not None and time.monotonic() - checked < OPT_IN_RECHECK_S:
            return
        self.inner.check_weights_secret(namespace, owner, secret)
        self.cache.weights_checked[key] = time.monotonic()

    def ensure_secret(self, namespace: str, name: str, owner: OwnerRef, key: str) -> bool:
        if (namespace, name) in self.cache.secrets:
            return False
        created = self.inner.ensure_secret(namespace, name, owner, key)
        self.cache.secrets.add((namespace, name))
        return created

    def event(self, body: Mapping[str, Any], kind: EventType, reason: str, message: str) -> None:
        self.inner.event(body, kind, reason, message)

    def drain_node(self, node: str) -> list[Drained]:
        return self.inner.drain_node(node)
