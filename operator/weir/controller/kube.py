"""The cluster port on a real API server, through the official Kubernetes client.

The only module of the control loop that holds a Kubernetes client: children
are applied by `weir.controller.apply`, references read by
`weir.controller.references`, nodes drained by `weir.controller.spot`, and
events posted through kopf (which batches and rate-limits them). Client
errors become `ClusterError` here, so nothing above sees an `ApiException`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from weir.api import InferenceDeploymentSpec
from weir.controller.apply import Applier, wrap_api_error
from weir.controller.children import DEPLOYMENT_LABEL, MANAGED_BY
from weir.controller.port import (
    ApplyResult,
    ClusterError,
    Drained,
    EventType,
    OwnerRef,
    References,
)
from weir.controller.references import (
    METADATA_ONLY,
    check_weights_secret,
    read_hosted,
    read_pools,
)
from weir.controller.spot import drain_node

GROUP, VERSION, PLURAL = "weir.dev", "v1alpha1", "inferencedeployments"
_log = logging.getLogger(__name__)


class KubeCluster:
    """`ClusterPort` against the API server of `api`."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._custom = client.CustomObjectsApi(api)
        self._applier = Applier(api)

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise wrap_api_error(
                f"read InferenceDeployment {namespace}/{name}", exc, ClusterError
            ) from exc
        return body if isinstance(body, dict) else None

    def read_references(self, namespace: str, spec: InferenceDeploymentSpec) -> References:
        return read_pools(self.api, spec), read_hosted(self.api, namespace, spec)

    def apply_children(
        self,
        namespace: str,
        owner: str,
        owner_uid: str,
        manifests: Sequence[dict[str, Any]],
        prune: bool = True,
    ) -> ApplyResult:
        return self._applier.sync(namespace, owner, owner_uid, manifests, prune)

    def observe_children(self, namespace: str, owner: str) -> ApplyResult:
        return self._applier.observe(namespace, owner)

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except ApiException as exc:
            raise wrap_api_error(f"write status of {namespace}/{name}", exc, ClusterError) from exc

    def check_weights_secret(self, namespace: str, owner: str, secret: str) -> None:
        check_weights_secret(self.api, namespace, owner, secret)

    def ensure_secret(self, namespace: str, name: str, owner: OwnerRef, key: str) -> bool:
        core = client.CoreV1Api(self.api)
        try:
            # Existence only: metadata, so the token's bytes never reach the operator.
            core.read_namespaced_secret(
                name, namespace, _headers={"Accept": METADATA_ONLY}, _preload_content=False
            )
            return False
        except ApiException as exc:
            if exc.status != 404:
                raise wrap_api_error(f"read Secret {namespace}/{name}", exc, ClusterError) from exc
        body: Any = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": {DEPLOYMENT_LABEL: owner.name, **MANAGED_BY},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "InferenceDeployment",
                        "name": owner.name,
                        "uid": owner.uid,
                        "controller": True,
                    }
                ],
            },
            "type": "Opaque",
            "stringData": {key: secrets.token_urlsafe(32)},
        }
        try:
            core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False  # another replica made it first
            raise wrap_api_error(f"create Secret {namespace}/{name}", exc, ClusterError) from exc
        return True

    def event(self, body: Mapping[str, Any], kind: EventType, reason: str, message: str) -> None:
        target = kopf.Body(cast(kopf.RawBody, dict(body)))
        if kind == "Warning":
            kopf.warn(target, reason=reason, message=message)
        else:
            kopf.event(target, type=kind, reason=reason, message=message)

    def drain_node(self, node: str) -> list[Drained]:
        try:
            return drain_node(self.api, node)
        except ApiException as exc:
            raise wrap_api_error(f"drain node {node}", exc, ClusterError) from exc
