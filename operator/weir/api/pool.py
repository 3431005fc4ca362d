"""CapacityPool: a GPU node pool, with its price and its risks.

On-demand and spot pools differ only in price and in interruption behaviour;
the planner weighs both in one number, so both live in one model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from weir.api._base import Spec
from weir.api._types import LabelKey, LabelValue, ProductName

CapacityType = Literal["on-demand", "spot"]

HOURS_PER_MONTH = 730.0


MAX_NODE_SELECTOR = 32
MAX_TOLERATIONS = 32


class Toleration(Spec):
    """A Kubernetes toleration, as written in a pod spec."""

    key: LabelKey = Field(description="Taint key to tolerate (a label key).")
    operator: Literal["Equal", "Exists"] = Field(default="Equal", description="Match operator.")
    value: LabelValue = Field(
        default="", description="Taint value (operator Equal; empty with Exists)."
    )
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        default="", description="Taint effect to tolerate; empty means all."
    )

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value: must be empty when operator is Exists (it matches any value)")
        return self


class CapacityPoolSpec(Spec):
    """A GPU node pool weir may place replicas on (cluster-scoped)."""

    gpu_type: ProductName = Field(description="GPU product, e.g. H100-SXM-80GB.")
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
        default=None, ge=1, le=1_000_000, description="Pool-wide GPU limit; empty means unlimited."
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_NODE_SELECTOR,
        description="Node labels that select the pool's nodes.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(),
        max_length=MAX_TOLERATIONS,
        strict=False,
        description="Tolerations for the pool's taints.",
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
