"""Reading what an InferenceDeployment refers to: CapacityPools and a HostedEndpoint.

Referenced objects are read fresh at every reconcile (level-based); a missing
or invalid one becomes an InvalidReferenceError with a message for the
condition, never an exception that crashes the handler. Only the spec of a
HostedEndpoint is read; its Secret is referenced by name and never read here.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.controller.apply import ApplyError
from weir.controller.children import InvalidReferenceError

GROUP, VERSION = "weir.dev", "v1alpha1"


def _get(fetch: Any, what: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = fetch()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise ApplyError(f"read {what}: {exc.status} {exc.reason}", temporary=True) from exc
    return body


def read_pools(api: client.ApiClient, spec: InferenceDeploymentSpec) -> dict[str, CapacityPoolSpec]:
    custom = client.CustomObjectsApi(api)
    pools = {}
    for binding in spec.pools:
        body = _get(
            lambda name=binding.pool: custom.get_cluster_custom_object(
                GROUP, VERSION, "capacitypools", name
            ),
            f"CapacityPool {binding.pool}",
        )
        if body is None:
            continue
        try:
            pools[binding.pool] = CapacityPoolSpec.model_validate(body.get("spec", {}))
        except ValidationError as exc:
            raise InvalidReferenceError(
                describe_validation_error(f"CapacityPool {binding.pool}", exc)
            ) from exc
    return pools


def read_hosted(
    api: client.ApiClient, namespace: str, spec: InferenceDeploymentSpec
) -> HostedEndpointSpec | None:
    if spec.hosted is None:
        return None
    custom = client.CustomObjectsApi(api)
    name = spec.hosted.endpoint
    body = _get(
        lambda: custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "hostedendpoints", name
        ),
        f"HostedEndpoint {namespace}/{name}",
    )
    if body is None:
        return None
    try:
        return HostedEndpointSpec.model_validate(body.get("spec", {}))
    except ValidationError as exc:
        raise InvalidReferenceError(
            describe_validation_error(f"HostedEndpoint {name}", exc)
        ) from exc
