"""The objects an InferenceDeployment owns, computed from scratch (pure).

Reconcile is level-based: every pass builds the whole desired set from the
spec, the referenced pools and endpoint, and the replicas to run, then
applies it. Nothing here reads the cluster or the clock, so the same inputs
always give the same objects, and the tests check them without a cluster.

Owned objects, all with an owner reference (deleting the resource deletes them):
- per pool in use, a Deployment of TensorRT-LLM engine pods placed on the pool
  (node selector, tolerations, GPU requests, HF_TOKEN from the named Secret), and
  its options ConfigMap;
- a Service over every engine pod, whatever the pool (the router discovers
  the pods through its EndpointSlices);
- the router's ConfigMap (settings and the live spill policy), Deployment and
  the Service clients call, named like the InferenceDeployment;
- a PodDisruptionBudget that lets voluntary evictions take one engine at a time.
- when the operator is told to (ChildSettings.network_policy), NetworkPolicies that
  let only the deployment's router and Prometheus reach its engines (isolation.py).

Every pod meets Pod Security "restricted" (non-root, RuntimeDefault seccomp, no
privilege escalation, all capabilities dropped) with a read-only root
filesystem and an emptyDir for what the process writes, so weir's children
run in namespaces that enforce the restricted profile.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.resources import DEPLOYMENT_NAME
from weir.controller.isolation import PrometheusPeer, network_policies
from weir.engines.launch import (
    HTTP_PORT,
    Placement,
    SecretKeyRef,
    TrtllmLaunch,
    container_security_context,
    engine_deployment,
    options_configmap,
    options_configmap_name,
    pod_security_context,
)

DEPLOYMENT_LABEL = "weir.dev/deployment"
COMPONENT_LABEL = "weir.dev/component"
POOL_LABEL = "weir.dev/pool"
CAPACITY_TYPE_LABEL = "weir.dev/capacity-type"
MANAGED_BY = {"app.kubernetes.io/managed-by": "weir"}
ROUTER_PORT = 8080
ROUTER_METRICS_PORT = 9091  # /metrics (spend, caps) apart from the API clients reach
ROUTER_CONFIG_DIR = "/etc/weir/router"
HOSTED_KEY_DIR = "/etc/weir/hosted"
CLIENT_TOKENS_DIR = "/etc/weir/clients"
CLIENT_TOKENS_KEY = "tokens"
ROUTER_UID = 65532  # the weir image's non-root user (the chart runs the operator as it too)


class InvalidReferenceError(ValueError):
    """The spec names a pool or endpoint that is missing or does not fit; no child is touched."""


@dataclass(frozen=True)
class Owner:
    """The InferenceDeployment that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": "weir.dev/v1alpha1",
            "kind": "InferenceDeployment",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ChildSettings:
    """Operator-wide choices for the children (from the operator's settings)."""

    router_image: str = "ghcr.io/weir-dev/weir:0.1.0"
    engine_cpu: str = "8"
    engine_memory: str = "64Gi"
    router_replicas: int = 1
    extra_router_args: tuple[str, ...] = ()
    # Where router pods go (the operator's router_node_selector / router_tolerations).
    router_node_selector: tuple[tuple[str, str], ...] = ()
    router_tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()
    # Clients need a bearer token from the Secret `client_tokens_name(owner)` (the operator
    # creates it); False serves anyone who reaches the router's Service.
    client_auth: bool = True
    # Hosts a plain-http hosted endpoint may use (tests, a proxy in the same network).
    insecure_hosted: tuple[str, ...] = ()
    # NetworkPolicies per deployment (engines only from its router and Prometheus); off
    # by default: where Prometheus runs is the cluster's, and a wrong guess blinds weir.
    network_policy: bool = False
    prometheus: PrometheusPeer = field(default_factory=PrometheusPeer)


@dataclass(frozen=True)
class Inputs:
    """Everything the children depend on."""

    owner: Owner
    spec: InferenceDeploymentSpec
    pools: dict[str, CapacityPoolSpec]
    hosted: HostedEndpointSpec | None
    replicas: dict[str, int]
    router_policy: dict[str, Any] = field(default_factory=dict)
    settings: ChildSettings = field(default_factory=ChildSettings)


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS label from parts; long ones keep a hash suffix so they stay unique."""
    name = "-".join(p for p in parts if p).lower()
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def engine_name(owner: str, pool: str) -> str:
    return dns_name(owner, pool)


def engine_pdb_name(owner: str) -> str:
    return dns_name(owner, "engine")


def router_name(owner: str) -> str:
    return dns_name(owner, "router")


def client_tokens_name(owner: str) -> str:
    """The Secret with the bearer tokens the router accepts from clients."""
    return dns_name(owner, "clients")


def insecure_host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether `host` is one of `allowed` (names, IPs or CIDRs), as the router decides."""
    for entry in allowed:
        if host == entry:
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_references(inputs: Inputs) -> None:
    """Refuse specs whose references cannot be honoured, with a message for the condition."""
    spec = inputs.spec
    problem = DEPLOYMENT_NAME.problem(inputs.owner.name)
    if problem is not None:  # the CRD refuses such names; an older CRD may not have
        raise InvalidReferenceError(problem)
    missing = [b.pool for b in spec.pools if b.pool not in inputs.pools]
    if missing:
        raise InvalidReferenceError(f"CapacityPool {', '.join(sorted(missing))} not found")
    if spec.hosted is not None and inputs.hosted is None:
        raise InvalidReferenceError(f"HostedEndpoint {spec.hosted.endpoint} not found")
    insecure = inputs.hosted.insecure_host() if inputs.hosted is not None else None
    if insecure is not None and not insecure_host_allowed(
        insecure, inputs.settings.insecure_hosted
    ):
        raise InvalidReferenceError(
            f"HostedEndpoint {spec.hosted.endpoint if spec.hosted else ''}: baseUrl is plain "
            f"http to {insecure}, which the operator's allowInsecureHosted does not list "
            "(the key would cross the network in the clear): use https"
        )
    for binding in spec.pools:
        pool = inputs.pools[binding.pool]
        if pool.gpus_per_replica != spec.model.tensor_parallel:
            raise InvalidReferenceError(
                f"CapacityPool {binding.pool} gives {pool.gpus_per_replica} GPU(s) per replica "
                f"but model.tensorParallel is {spec.model.tensor_parallel}"
            )


def _labels(owner: Owner, component: str, **extra: str) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: owner.name, COMPONENT_LABEL: component, **MANAGED_BY, **extra}


def _owned(manifest: dict[str, Any], owner: Owner) -> dict[str, Any]:
    manifest["metadata"]["namespace"] = owner.namespace
    manifest["metadata"]["ownerReferences"] = [owner.reference()]
    return manifest


def _launch(spec: InferenceDeploymentSpec) -> TrtllmLaunch:
    return TrtllmLaunch.model_validate(
        {
            "model": spec.model.name,
            "precision": spec.model.precision,
            "tensor_parallel": spec.model.tensor_parallel,
            "image": spec.model.engine_image,
        }
    )


def engine_children(inputs: Inputs) -> list[dict[str, Any]]:
    """Per pool: the engine Deployment and its options ConfigMap."""
    owner, launch = inputs.owner, _launch(inputs.spec)
    ref = inputs.spec.model.weights_secret_ref  # HF_TOKEN by secretKeyRef: never the value
    hf_token = None if ref is None else SecretKeyRef(name=ref.name, key=ref.key)
    children = []
    for binding in inputs.spec.pools:
        pool = inputs.pools[binding.pool]
        name = engine_name(owner.name, binding.pool)
        placement = Placement(
            node_selector=dict(pool.node_selector),
            tolerations=tuple(t.model_dump(exclude_none=True) for t in pool.tolerations),
            cpu=inputs.settings.engine_cpu,
            memory=inputs.settings.engine_memory,
        )
        labels = _labels(
            owner,
            "engine",
            **{
                POOL_LABEL: binding.pool,
                CAPACITY_TYPE_LABEL: pool.capacity_type,
            },
        )
        deployment = engine_deployment(
            name,
            owner.namespace,
            launch,
            placement,
            replicas=inputs.replicas.get(binding.pool, binding.min_replicas),
            labels=labels,
            hf_token=hf_token,
        )
        configmap = options_configmap(options_configmap_name(name), owner.namespace, launch)
        configmap["metadata"].setdefault("labels", {}).update(_labels(owner, "engine"))
        children += [_owned(deployment, owner), _owned(configmap, owner)]
    return children


def engine_services(inputs: Inputs) -> list[dict[str, Any]]:
    """One Service per pool: the router learns an endpoint's pool from its Service."""
    owner = inputs.owner
    services = []
    for binding in inputs.spec.pools:
        services.append(
            _owned(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": engine_name(owner.name, binding.pool),
                        "labels": _labels(owner, "engine", **{POOL_LABEL: binding.pool}),
                    },
                    "spec": {
                        "selector": {
                            DEPLOYMENT_LABEL: owner.name,
                            COMPONENT_LABEL: "engine",
                            POOL_LABEL: binding.pool,
                        },
                        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT}],
                        "publishNotReadyAddresses": False,
                    },
                },
                owner,
            )
        )
    return services


def engine_pdb(owner: Owner) -> dict[str, Any]:
    return _owned(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {
                "name": engine_pdb_name(owner.name),
                "labels": _labels(owner, "engine"),
            },
            "spec": {
                "maxUnavailable": 1,
                "selector": {
                    "matchLabels": {DEPLOYMENT_LABEL: owner.name, COMPONENT_LABEL: "engine"}
                },
            },
        },
        owner,
    )


def router_policy_file(inputs: Inputs) -> dict[str, Any]:
    """The router's policy file (weir.router.config.RouterPolicy, camelCase): the plan's
    spill policy plus the SLO and the hosted endpoint's spec (never its key)."""
    policy = {k: v for k, v in inputs.router_policy.items() if k != "drainingPods"}
    policy["slo"] = inputs.spec.slo.model_dump(by_alias=True)
    if inputs.spec.hosted is not None and inputs.hosted is not None:
        policy["hosted"] = inputs.hosted.model_dump(by_alias=True, exclude={"secret_ref"})
    else:
        policy["hostedEnabled"] = False
    return policy


def router_rbac(owner: Owner, name: str) -> list[dict[str, Any]]:
    """The router reads the EndpointSlices of its namespace, nothing else."""
    labels = _labels(owner, "router")
    return [
        _owned(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "labels": labels},
            },
            owner,
        ),
        _owned(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "labels": labels},
                "rules": [
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
            owner,
        ),
        _owned(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [
                    {"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}
                ],
            },
            owner,
        ),
    ]


def router_args(inputs: Inputs) -> list[str]:
    """`weir router` flags: discovery of each pool's Service, the policy file, the key file."""
    owner = inputs.owner
    args = [
        "router",
        f"--model={inputs.spec.model.name}",
        "--host=0.0.0.0",
        f"--port={ROUTER_PORT}",
        f"--discover-namespace={owner.namespace}",
        *(
            f"--discover-service={b.pool}={engine_name(owner.name, b.pool)}"
            for b in inputs.spec.pools
        ),
        f"--policy-file={ROUTER_CONFIG_DIR}/policy.json",
        f"--metrics-port={ROUTER_METRICS_PORT}",
    ]
    if inputs.hosted is not None and inputs.hosted.secret_ref is not None:
        args.append(f"--hosted-key-file={HOSTED_KEY_DIR}/api-key")
    if inputs.settings.client_auth:
        args.append(f"--client-tokens-file={CLIENT_TOKENS_DIR}/{CLIENT_TOKENS_KEY}")
    else:
        args.append("--allow-anonymous")
    args.extend(f"--allow-insecure-hosted={host}" for host in inputs.settings.insecure_hosted)
    return [*args, *inputs.settings.extra_router_args]


def _router_placement(settings: ChildSettings) -> dict[str, Any]:
    """nodeSelector and tolerations of router pods, only where the operator was given some
    (an empty field would still be an update of every Deployment)."""
    placement: dict[str, Any] = {}
    if settings.router_node_selector:
        placement["nodeSelector"] = dict(settings.router_node_selector)
    if settings.router_tolerations:
        placement["tolerations"] = [dict(t) for t in settings.router_tolerations]
    return placement


def router_children(inputs: Inputs) -> list[dict[str, Any]]:
    owner = inputs.owner
    name = router_name(owner.name)
    labels = _labels(owner, "router")
    policy_text = json.dumps(router_policy_file(inputs), sort_keys=True, indent=1)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"policy.json": policy_text},
    }
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": name}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": ROUTER_CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # the root filesystem is read-only
    ]
    secret_ref = inputs.hosted.secret_ref if inputs.hosted else None
    if secret_ref is not None:
        volumes.append(
            {
                "name": "hosted-key",
                "secret": {
                    "secretName": secret_ref.name,
                    "items": [{"key": secret_ref.key, "path": "api-key"}],
                },
            }
        )
        mounts.append({"name": "hosted-key", "mountPath": HOSTED_KEY_DIR, "readOnly": True})
    if inputs.settings.client_auth:
        volumes.append(
            {"name": "clients", "secret": {"secretName": client_tokens_name(owner.name)}}
        )
        mounts.append({"name": "clients", "mountPath": CLIENT_TOKENS_DIR, "readOnly": True})
    probe = {"httpGet": {"path": "/readyz", "port": ROUTER_PORT}, "periodSeconds": 5}
    container = {
        "name": "router",
        "image": inputs.settings.router_image,
        "args": router_args(inputs),
        "ports": [
            {"name": "http", "containerPort": ROUTER_PORT},
            {"name": "metrics", "containerPort": ROUTER_METRICS_PORT},
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": ROUTER_PORT}},
        "resources": {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": inputs.settings.router_replicas,
            "selector": {"matchLabels": {DEPLOYMENT_LABEL: owner.name, COMPONENT_LABEL: "router"}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(ROUTER_METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": True,
                    "containers": [container],
                    "volumes": volumes,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(ROUTER_UID),
                    **_router_placement(inputs.settings),
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": owner.name, "labels": labels},
        "spec": {
            "selector": {DEPLOYMENT_LABEL: owner.name, COMPONENT_LABEL: "router"},
            "ports": [{"name": "http", "port": 80, "targetPort": ROUTER_PORT}],
        },
    }
    return [
        *router_rbac(owner, name),
        _owned(configmap, owner),
        _owned(deployment, owner),
        _owned(service, owner),
    ]


def isolation(inputs: Inputs) -> list[dict[str, Any]]:
    """The deployment's NetworkPolicies, when the operator is told to create them."""
    owner, settings = inputs.owner, inputs.settings
    if not settings.network_policy:
        return []
    policies = network_policies(
        owner.name,
        {DEPLOYMENT_LABEL: owner.name, **MANAGED_BY},
        COMPONENT_LABEL,
        (HTTP_PORT, ROUTER_PORT),
        settings.prometheus,
    )
    for policy in policies:
        policy["metadata"]["labels"] = _labels(owner, "network")
    return [_owned(policy, owner) for policy in policies]


def desired_children(inputs: Inputs) -> list[dict[str, Any]]:
    """Every object the InferenceDeployment should own, in apply order."""
    check_references(inputs)
    return [
        *isolation(inputs),
        *engine_children(inputs),
        *engine_services(inputs),
        engine_pdb(inputs.owner),
        *router_children(inputs),
    ]
