"""Reading what an InferenceDeployment refers to: CapacityPools, a HostedEndpoint
and the Secret its engines read the model's weights token from.

Referenced objects are read fresh at every reconcile (level-based); a missing
or invalid one becomes an InvalidReferenceError with a message for the
condition, never an exception that crashes the handler. Only the spec of a
HostedEndpoint is read, and of its Secret only the metadata (a
PartialObjectMetadata read: the key's bytes never reach the operator): the router
will send that Secret's value to the endpoint's `baseUrl`, so a Secret must
name the endpoints it may be sent to (annotation `weir.dev/hosted-endpoints`,
comma-separated names). Without that, anyone who may create a
HostedEndpoint in the namespace could have any of its Secrets sent to a
server of their choice. The same holds for the weights token: an engine pod
reads it, and whoever writes the InferenceDeployment picks the engine image, so
the Secret must name the InferenceDeployments that may read it (annotation
`weir.dev/inference-deployments`, comma-separated names).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.controller.apply import ApplyError
from weir.controller.children import InvalidReferenceError
from weir.controller.optin import SECRET_OPT_IN, WEIGHTS_OPT_IN, names

GROUP, VERSION = "weir.dev", "v1alpha1"
__all__ = ["SECRET_OPT_IN", "WEIGHTS_OPT_IN"]
# Ask the API server for the object's metadata only (supported since 1.15).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


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
        hosted = HostedEndpointSpec.model_validate(body.get("spec", {}))
    except ValidationError as exc:
        raise InvalidReferenceError(
            describe_validation_error(f"HostedEndpoint {name}", exc)
        ) from exc
    if hosted.secret_ref is not None:
        secret = hosted.secret_ref.name
        meta = read_secret_metadata(api, namespace, secret)
        if meta is None:
            raise InvalidReferenceError(
                f"HostedEndpoint {name}: secretRef Secret {secret} not found"
            )
        check_secret_opt_in(meta.get("annotations"), name, secret)
    return hosted


def check_weights_secret(api: client.ApiClient, namespace: str, owner: str, secret: str) -> None:
    """Refuse a weights Secret that is missing or does not name `owner` (metadata only)."""
    meta = read_secret_metadata(api, namespace, secret)
    if meta is None:
        raise InvalidReferenceError(f"model.weightsSecretRef: Secret {secret} not found")
    if not names(meta.get("annotations"), WEIGHTS_OPT_IN, owner):
        raise InvalidReferenceError(
            f"model.weightsSecretRef: Secret {secret} does not allow InferenceDeployment "
            f"{owner}; annotate the Secret {WEIGHTS_OPT_IN}={owner} to let its engines read "
            "the token"
        )


def read_secret_metadata(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A Secret's metadata, or None when it does not exist; its data is never sent.

    The operator needs only the opt-in annotation (and, for the client-token
    Secret, existence), so it asks for PartialObjectMetadata: the key stays
    out of the operator's memory, logs and tracebacks. A reply that is not
    metadata (a server or proxy that ignored the Accept header) is refused
    rather than parsed, so the guarantee holds or the read fails.
    """
    core = client.CoreV1Api(api)
    try:
        reply: Any = core.read_namespaced_secret(
            name, namespace, _headers={"Accept": METADATA_ONLY}, _preload_content=False
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise ApplyError(
            f"read Secret {namespace}/{name}: {exc.status} {exc.reason}", temporary=True
        ) from exc
    try:
        body = json.loads(reply.data)
    except ValueError as exc:
        raise ApplyError(
            f"read Secret {namespace}/{name}: the reply is not JSON", temporary=True
        ) from exc
    if not isinstance(body, dict) or body.get("kind") != "PartialObjectMetadata":
        kind = body.get("kind") if isinstance(body, dict) else type(body).__name__
        raise ApplyError(
            f"read Secret {namespace}/{name}: asked for metadata only, got {kind!r}; "
            "the API server (or a proxy in front of it) ignored the Accept header",
            temporary=True,
        )
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def check_secret_opt_in(annotations: dict[str, str] | None, endpoint: str, secret: str) -> None:
    """Refuse a Secret that does not name `endpoint` in its opt-in annotation."""
    if not names(annotations, SECRET_OPT_IN, endpoint):
        raise InvalidReferenceError(
            f"HostedEndpoint {endpoint}: Secret {secret} does not allow it; annotate the Secret "
            f"{SECRET_OPT_IN}={endpoint} to let weir send its key to that endpoint"
        )
