"""InferenceDeployment: one model, its SLO, its pools, its hosted burst.

This is what an SRE writes. It references pools and a hosted endpoint by
name and bounds what weir may do with each (min/max replicas, hosted share
and spend), so the planner can never act outside what was allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from weir.api._base import Spec
from weir.api._types import MAX_DOLLARS_PER_HOUR, DnsLabel, ImageRef, ModelRef, SecretDataKey
from weir.api.hosted import SecretKeyRef
from weir.api.slo import SLO, CostTargets

# What TensorRT-LLM serves (weir.engines.launch.Precision says the same; a test checks).
Precision = Literal["bf16", "fp16", "fp8", "nvfp4", "int4_awq"]
MAX_POOLS = 16


class WeightsSecretRef(SecretKeyRef):
    """Where the Hugging Face token lives: a key in a Secret of the deployment's namespace."""

    key: SecretDataKey = Field(default="token", description="Key inside the Secret.")


class ModelSpec(Spec):
    """The model and the engine that serves it."""

    name: ModelRef = Field(
        description="Model reference: a Hugging Face id (meta-llama/Llama-3.3-70B) or an "
        "absolute path on a mounted volume."
    )
    precision: Precision = Field(default="fp8", description="Weights precision.")
    tensor_parallel: int = Field(
        default=1, ge=1, le=8, description="GPUs per replica (TP; one node, at most 8)."
    )
    engine_image: ImageRef = Field(
        default="nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
        description="Engine container image with a pinned tag or digest (TensorRT-LLM).",
    )
    weights_secret_ref: WeightsSecretRef | None = Field(
        default=None,
        description="Secret with the Hugging Face token the engine downloads gated weights with "
        "(meta-llama and other gated repos); empty for public models. The token never passes "
        "through weir: the engine pod reads it as HF_TOKEN through a secretKeyRef. Whoever "
        "writes this resource picks the engine image, so the Secret must opt in: its annotation "
        "weir.dev/inference-deployments names the InferenceDeployments (comma-separated) that "
        "may read it; otherwise nothing is applied and Ready is False.",
    )


class PoolBinding(Spec):
    """A capacity pool this deployment may use, and how many replicas there."""

    pool: DnsLabel = Field(description="Name of a CapacityPool.")
    min_replicas: int = Field(default=0, ge=0, le=10000, description="Fewest replicas, count.")
    max_replicas: int = Field(ge=0, le=10000, description="Most replicas, count.")

    @model_validator(mode="after")
    def _bounds(self) -> PoolBinding:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas: must be <= maxReplicas ({self.min_replicas} > {self.max_replicas})"
            )
        return self


class HostedBurst(Spec):
    """How much of the traffic and the budget may go to the hosted endpoint."""

    endpoint: DnsLabel = Field(description="Name of a HostedEndpoint.")
    max_share: float = Field(
        default=1.0, ge=0, le=1, description="Largest fraction of requests sent hosted, 0..1."
    )
    max_dollars_per_hour: float = Field(
        gt=0, le=MAX_DOLLARS_PER_HOUR, description="Hard cap on hosted spend, US dollars per hour."
    )


class ControlSettings(Spec):
    """How often and how boldly the planner acts."""

    period_seconds: float = Field(default=15.0, ge=1, le=3600, description="Control period, s.")
    scale_down_stabilisation_seconds: float = Field(
        default=120.0,
        ge=0,
        le=86400,
        description=(
            "A pool shrinks only to the largest count planned over this window, s, and "
            "never over less than the pool's cold start (a replica released and wanted back "
            "pays a whole cold start)."
        ),
    )
    max_scale_up_per_step: int = Field(
        default=8, ge=1, le=1000, description="Most replicas added per pool per period, count."
    )
    max_scale_down_per_step: int = Field(
        default=4, ge=1, le=1000, description="Most replicas removed per pool per period, count."
    )
    stale_after_seconds: float = Field(
        default=90.0, gt=0, le=86400, description="Metrics older than this are stale, s."
    )
    min_saving_fraction: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="A change must lower predicted $/useful token by this fraction, 0..1.",
    )
    replica_amortisation_seconds: float = Field(
        default=1800.0,
        gt=0,
        le=86400,
        description=(
            "A new replica's cold start is charged over this expected lifetime, s; "
            "it keeps weir from starting GPUs that barely beat the hosted price."
        ),
    )
    attainment_feedback: bool = Field(
        default=True,
        description=(
            "Trust each replica less while the replicas' measured useful fraction is below "
            "target (AIMD on the capacity model): the correction for mixes that hurt a replica's "
            "tail in ways its profile does not show; off plans on the profile and learned speed."
        ),
    )
    mode: Literal["enforce", "recommend"] = Field(
        default="enforce", description="enforce acts; recommend only writes the plan."
    )

    @model_validator(mode="after")
    def _stale_vs_period(self) -> ControlSettings:
        if self.stale_after_seconds < self.period_seconds:
            raise ValueError("staleAfterSeconds: must be >= periodSeconds")
        return self


class InferenceDeploymentSpec(Spec):
    """Spec of an InferenceDeployment (namespaced)."""

    model: ModelSpec = Field(description="Model and engine.")
    slo: SLO = Field(description="Latency targets and useful-token attainment target.")
    cost: CostTargets = Field(description="Budget and goal.")
    pools: tuple[PoolBinding, ...] = Field(
        min_length=1, max_length=MAX_POOLS, strict=False, description="Pools it may use."
    )
    hosted: HostedBurst | None = Field(default=None, description="Hosted burst, if any.")
    control: ControlSettings = Field(default_factory=ControlSettings, description="Control.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=100000,
        description="Pinned total engine replicas (set by `kubectl scale`): weir runs this many, "
        "cheapest pools first within each pool's min/max, and still decides the spill policy; "
        "empty lets the planner choose.",
    )

    @model_validator(mode="after")
    def _unique_pools(self) -> InferenceDeploymentSpec:
        names = [binding.pool for binding in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pools: each pool may be listed once, got {names}")
        if (
            self.hosted is not None
            and self.hosted.max_dollars_per_hour > self.cost.budget_dollars_per_hour
        ):
            raise ValueError("hosted.maxDollarsPerHour: must be <= cost.budgetDollarsPerHour")
        hosted_serves = self.hosted is not None and self.hosted.max_share > 0
        if not hosted_serves and all(b.max_replicas == 0 for b in self.pools):
            raise ValueError(
                "pools: every pool has maxReplicas 0 and no hosted endpoint may take traffic "
                "(hosted absent or maxShare 0): nothing could serve a request"
            )
        return self
