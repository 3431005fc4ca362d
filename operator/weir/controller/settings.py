"""The operator's settings, one model, read from `WEIR_OPERATOR_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from weir.api._types import LabelKey, LabelValue
from weir.api.pool import MAX_NODE_SELECTOR, MAX_TOLERATIONS, Toleration
from weir.controller.children import ChildSettings


class OperatorSettings(BaseSettings):
    """Where the operator finds things and what it puts into the children."""

    model_config = SettingsConfigDict(env_prefix="WEIR_OPERATOR_", frozen=True)

    kubeconfig: str | None = Field(
        default=None, description="Kubeconfig path; empty means in-cluster, then KUBECONFIG."
    )
    router_image: str = Field(
        default="ghcr.io/weir-dev/weir:0.1.0", description="Image of the router (this package)."
    )
    router_replicas: int = Field(
        default=1, ge=0, le=100, description="Router pods per InferenceDeployment."
    )
    router_extra_args: list[str] = Field(
        default_factory=list,
        description="Extra `weir router` flags for every router pod (a JSON list in the "
        'environment), e.g. shorter timeouts: ["--first-token-timeout=5"].',
    )
    router_node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_NODE_SELECTOR,
        description="Node labels router pods must match (a JSON object in the environment): "
        "routers need CPUs, not GPUs, so an SRE puts them on the system or CPU nodes.",
    )
    router_tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=MAX_TOLERATIONS,
        description="Tolerations of router pods (a JSON list of pod-spec tolerations), for "
        "nodes that are tainted for system pods.",
    )
    router_client_auth: bool = Field(
        default=True,
        description="Routers require a bearer token from the Secret <deployment>-clients (the "
        "operator creates it, a random token under `tokens`); false serves anyone in reach.",
    )
    allow_insecure_hosted: list[str] = Field(
        default_factory=list,
        description="Hosts (names, IPs, CIDRs; a JSON list) a HostedEndpoint may reach over "
        "plain http; every other baseUrl must be https.",
    )
    engine_cpu: str = Field(default="8", description="CPU request of an engine pod.")
    engine_memory: str = Field(default="64Gi", description="Memory request of an engine pod.")
    prometheus_url: str = Field(
        default="http://127.0.0.1:19090", description="Prometheus the control loop reads."
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of the operator's own /metrics; 0: off."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of the operator's /metrics."
    )
    profiles_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parents[3] / "engines" / "profiles",
        description="Folder of engine profiles (*.yaml) the planner reads.",
    )
    metrics_window_s: float = Field(
        default=120.0, gt=0, le=3600, description="Sliding window of the PromQL rates, seconds."
    )
    metrics_refresh_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="A snapshot is shared by every deployment for this long, seconds.",
    )
    reclaim_taints: list[str] = Field(
        default_factory=lambda: [
            "weir.dev/reclaim",
            "aws-node-termination-handler/spot-itn",
            "aws-node-termination-handler/rebalance-recommendation",
            "cloud.google.com/impending-node-termination",
            "karpenter.sh/disrupted",
            "ToBeDeletedByClusterAutoscaler",
            "node.kubernetes.io/out-of-service",
        ],
        description="Taint keys that mean a node is being reclaimed (JSON list in the variable).",
    )
    spot_condition_s: float = Field(
        default=600.0, gt=0, description="SpotInterrupted stays True this long after a drain, s."
    )
    peering_lifetime_s: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="A silent operator replica is presumed dead after this long (takeover), s.",
    )
    api_workers: int = Field(
        default=32,
        ge=1,
        le=512,
        description="Threads for Kubernetes calls (the client is synchronous); asyncio's default "
        "of CPUs + 4 would let 6 calls at a time serve a thousand deployments on 2 cores.",
    )
    reconcile_retry_s: float = Field(
        default=5.0, gt=0, description="Delay before retrying a temporary failure, seconds."
    )

    def child_settings(self) -> ChildSettings:
        """What of these settings goes into the children (hashable, for the digest)."""
        return ChildSettings(
            router_image=self.router_image,
            engine_cpu=self.engine_cpu,
            engine_memory=self.engine_memory,
            router_replicas=self.router_replicas,
            extra_router_args=tuple(self.router_extra_args),
            router_node_selector=tuple(sorted(self.router_node_selector.items())),
            router_tolerations=tuple(
                tuple(t.model_dump(exclude_defaults=True).items()) for t in self.router_tolerations
            ),
            client_auth=self.router_client_auth,
            insecure_hosted=tuple(self.allow_insecure_hosted),
        )
