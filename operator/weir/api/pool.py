"""CapacityPool: a GPU node pool, with its price and its risks.

On-demand and spot pools differ only in price and in interruption behaviour;
the planner weighs both in one number, so both live in one model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from weir.api._base import Resource

CapacityType = Literal["on-demand", "spot"]

HOURS_PER_MONTH = 730.0


class Toleration(Resource):
    """A Kubernetes toleration, as written in a pod spec."""

    key: str = Field(min_length=1, description="Taint key to tolerate.")
    operator: Literal["Equal", "Exists"] = Field(default="Equal", description="Match operator.")
    value: str | None = Field(default=None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty means all."
    )


class CapacityPoolSpec(Resource):
    """A GPU node pool weir may place replicas on (cluster-scoped)."""

    gpu_type: str = Field(min_length=1, description="GPU product, e.g. H100-SXM-80GB.")
    gpus_per_replica: int = Field(ge=1, le=64, description="GPUs one replica uses.")
    dollars_per_gpu_hour: float = Field(
        gt=0, le=1000, description="Price of one GPU, US dollars per hour."
    )
    capacity_type: CapacityType = Field(
        default="on-demand", description="on-demand, or spot (cheaper, may be interrupted)."
    )
    interruptions_per_instance_month: float = Field(
        default=0.0,
        ge=0,
        le=30,
        description="Expected interruptions per instance per month (0.15 = 15%).",
    )
    interruption_notice_seconds: float = Field(
        default=0.0, ge=0, le=3600, description="Warning before an interruption, seconds."
    )
    cold_start_seconds: float = Field(
        ge=0, le=7200, description="Time from scale-up to a ready replica, seconds."
    )
    max_gpus: int | None = Field(
        default=None, ge=1, description="Pool-wide GPU limit; empty means unlimited."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels that select the pool's nodes."
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(), description="Tolerations for the pool's taints."
    )

    @model_validator(mode="after")
    def _spot_fields(self) -> CapacityPoolSpec:
        if self.capacity_type == "on-demand" and self.interruptions_per_instance_month > 0:
            raise ValueError("interruptionsPerInstanceMonth: must be 0 for an on-demand pool")
        if self.max_gpus is not None and self.max_gpus < self.gpus_per_replica:
            raise ValueError("maxGpus: must be at least gpusPerReplica")
        return self

    @property
    def dollars_per_replica_hour(self) -> float:
        """Price of one replica, US dollars per hour."""
        return self.dollars_per_gpu_hour * self.gpus_per_replica

    @property
    def interruptions_per_hour(self) -> float:
        """Expected interruptions per replica per hour."""
        return self.interruptions_per_instance_month / HOURS_PER_MONTH

    @property
    def max_replicas_by_gpus(self) -> int | None:
        """The most replicas the pool's GPU limit allows, or None when unlimited."""
        return None if self.max_gpus is None else self.max_gpus // self.gpus_per_replica
