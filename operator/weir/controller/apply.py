"""Make the cluster hold exactly the desired children: server-side apply, then prune.

Server-side apply with one field manager and `force` means every field weir
sets is put back when someone edits it by hand, while fields others own (an
HPA's replicas we never set, annotations added by tools) are left alone.
Pruning deletes children of this owner that are no longer desired (a pool
removed from the spec), found by label and owner UID, never by name alone.
API errors are wrapped at this boundary: conflicts and 5xx are temporary
(kopf retries), 4xx on our own objects are permanent bugs to report.

RoleBindings go last. The operator runs on its own ServiceAccount, which may
bind a Role only if it holds what the Role grants, so the API server reads the
Role to check a binding: applied together, the binding can arrive first and be
refused with 404, and even after the Role is written the authorizer's cache may
not have it yet, so a 404 on a binding is worth a retry. (An admin kubeconfig
skips the check, which is why running beside the cluster never showed this.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from weir.controller.children import DEPLOYMENT_LABEL, MANAGED_BY
from weir.controller.port import ApplyResult, ClusterError

FIELD_MANAGER = "weir"
_APPLY_WORKERS = 6  # concurrent applies per reconcile; the client pool is sized to match
PRUNABLE = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)


# Applied after every other child: they name a Role the API server must find.
BINDINGS = frozenset({"RoleBinding"})


class ApplyError(ClusterError):
    """Applying, pruning or reading children failed (the port's error, named for its place)."""


def waves(manifests: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The manifests in the order they can be applied: everything a binding may name,
    then the bindings (each wave is applied several at once)."""
    listed = list(manifests)
    first = [m for m in listed if m["kind"] not in BINDINGS]
    then = [m for m in listed if m["kind"] in BINDINGS]
    return [wave for wave in (first, then) if wave]


_Error = TypeVar("_Error", bound=ClusterError)


def wrap_api_error(action: str, exc: ApiException | DynamicApiError, kind: type[_Error]) -> _Error:
    """The client's error as weir's own `kind`, named by `action`: no answer (0),
    a conflict (409), throttling (429) and server errors (5xx) are temporary,
    any other 4xx is permanent. Raise it `from exc`."""
    status = int(getattr(exc, "status", 0) or 0)
    reason = getattr(exc, "reason", "") or ""
    temporary = status in (0, 409, 429) or status >= 500
    return kind(f"{action}: {status} {reason}".strip(), temporary)


class Applier:
    """Applies manifests of any kind through the dynamic client (discovery is cached)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._dynamic = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _apply_one(self, manifest: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
        meta = manifest["metadata"]
        what = f"apply {manifest['kind']} {meta['namespace']}/{meta['name']}"
        try:
            applied = self._resource(manifest["apiVersion"], manifest["kind"]).server_side_apply(
                body=manifest,
                name=meta["name"],
                namespace=meta["namespace"],
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except (ApiException, DynamicApiError) as exc:
            if manifest["kind"] in BINDINGS and getattr(exc, "status", None) == 404:
                raise ApplyError(
                    f"{what}: 404: its Role {manifest.get('roleRef', {}).get('name')} is not "
                    "visible to the API server's authorizer yet",
                    temporary=True,
                ) from exc
            raise wrap_api_error(what, exc, ApplyError) from exc
        return (manifest["kind"], meta["name"]), applied.to_dict().get("status") or {}

    def apply(self, manifests: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Apply every manifest, several at once within each of its `waves`; return each
        applied object's current status."""
        observed: dict[tuple[str, str], dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=_APPLY_WORKERS) as pool:
            for wave in waves(manifests):
                observed.update(pool.map(self._apply_one, wave))
        return observed

    def prune(
        self, namespace: str, owner: str, owner_uid: str, keep: Iterable[dict[str, Any]]
    ) -> tuple[str, ...]:
        """Delete this owner's children that are not in `keep`."""
        wanted = {(m["kind"], m["metadata"]["name"]) for m in keep}
        selector = f"{DEPLOYMENT_LABEL}={owner}," + ",".join(
            f"{k}={v}" for k, v in MANAGED_BY.items()
        )
        pruned = []
        for api_version, kind in PRUNABLE:
            resource = self._resource(api_version, kind)
            try:
                items = resource.get(namespace=namespace, label_selector=selector).items
            except (ApiException, DynamicApiError) as exc:
                raise wrap_api_error(f"list {kind} in {namespace}", exc, ApplyError) from exc
            for item in items:
                refs = item.metadata.ownerReferences or []
                ours = any(ref.uid == owner_uid for ref in refs)
                if ours and (kind, item.metadata.name) not in wanted:
                    try:
                        resource.delete(name=item.metadata.name, namespace=namespace)
                    except (ApiException, DynamicApiError) as exc:
                        if getattr(exc, "status", None) != 404:
                            raise wrap_api_error(
                                f"delete {kind} {item.metadata.name}", exc, ApplyError
                            ) from exc
                    pruned.append(f"{kind}/{item.metadata.name}")
        return tuple(pruned)

    def observe(self, namespace: str, owner: str) -> ApplyResult:
        """The owner's Deployments' status, without applying anything."""
        resource = self._resource("apps/v1", "Deployment")
        try:
            items = resource.get(
                namespace=namespace, label_selector=f"{DEPLOYMENT_LABEL}={owner}"
            ).items
        except (ApiException, DynamicApiError) as exc:
            raise wrap_api_error(f"list Deployments of {owner}", exc, ApplyError) from exc
        observed = {
            ("Deployment", i.metadata.name): (i.to_dict().get("status") or {}) for i in items
        }
        return ApplyResult(0, (), observed)

    def sync(
        self,
        namespace: str,
        owner: str,
        owner_uid: str,
        manifests: Sequence[dict[str, Any]],
        prune: bool = True,
    ) -> ApplyResult:
        observed = self.apply(manifests)
        pruned = self.prune(namespace, owner, owner_uid, manifests) if prune else ()
        return ApplyResult(len(manifests), pruned, observed)
