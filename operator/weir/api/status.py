"""Status of an InferenceDeployment: what weir observed, decided and why.

Everything the operator decides is explained where SREs already look:
`kubectl get` columns come from the top-level numbers, `kubectl describe`
shows the last decision with its reasons and the alternatives it weighed.
Secrets never appear here (only the names of what is referenced).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weir.api._base import Resource

ConditionType = Literal[
    "Ready", "MetricsAvailable", "Spilling", "BudgetLimited", "SpotInterrupted", "Degraded"
]


class Condition(Resource):
    """A Kubernetes-style condition."""

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason code.")
    message: str = Field(default="", description="What happened, for people.")
    last_transition_time: str | None = Field(
        default=None, description="When status last changed, RFC 3339."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="Spec generation seen.")


class PoolStatus(Resource):
    """Replicas and spend of one pool."""

    pool: str = Field(description="CapacityPool name.")
    capacity_type: Literal["on-demand", "spot"] = Field(description="Capacity type of the pool.")
    desired_replicas: int = Field(ge=0, description="Replicas the last plan wants, count.")
    replicas: int = Field(default=0, ge=0, description="Replicas that exist, count.")
    ready_replicas: int = Field(default=0, ge=0, description="Replicas ready to serve, count.")
    dollars_per_hour: float = Field(default=0, ge=0, description="Spend rate, US dollars per hour.")


class Alternative(Resource):
    """One option the planner weighed, with its predicted economics."""

    description: str = Field(description="The option, e.g. '+1 on-demand' or 'spill 30%'.")
    dollars_per_million_useful_tokens: float | None = Field(
        default=None, ge=0, description="Predicted cost, US dollars per million useful tokens."
    )
    useful_token_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Predicted useful fraction, 0..1."
    )
    chosen: bool = Field(default=False, description="Whether this option was taken.")


class DecisionRecord(Resource):
    """The last plan: what, when, why."""

    time: str = Field(description="When it was decided, RFC 3339.")
    summary: str = Field(description="One line: what the plan is.")
    reasons: list[str] = Field(default_factory=list, description="Why, one reason per line.")
    alternatives: list[Alternative] = Field(
        default_factory=list, description="Options weighed, with their predicted cost."
    )
    acted: bool = Field(default=False, description="False in recommend mode or when held.")


class SpillPolicyStatus(Resource):
    """The spill policy the router applies until the next plan (also in its ConfigMap)."""

    concurrency_limit_by_pool: dict[str, int] = Field(
        default_factory=dict, description="In-flight requests per replica, by pool, count."
    )
    hosted_enabled: bool = Field(default=False, description="May overflow go hosted?")
    max_hosted_share: float = Field(default=0, ge=0, le=1, description="Hosted share cap, 0..1.")
    max_hosted_dollars_per_hour: float = Field(
        default=0, ge=0, description="Hosted spend cap, US dollars per hour."
    )
    max_local_prefill_tokens: float | None = Field(
        default=None, ge=0, description="Longer prompts go hosted when allowed, tokens."
    )
    max_waiting: int = Field(default=0, ge=0, description="Requests that may queue locally.")
    draining_pods: list[str] = Field(
        default_factory=list, description="Engine pods that get no new requests (spot notice)."
    )


class InferenceDeploymentStatus(Resource):
    """Observed state, live economics and the last decision."""

    observed_generation: int | None = Field(default=None, ge=0, description="Spec generation seen.")
    replicas: int = Field(default=0, ge=0, description="Engine replicas that exist, all pools.")
    ready_replicas: int = Field(default=0, ge=0, description="Ready engine replicas, all pools.")
    on_demand_replicas: int = Field(default=0, ge=0, description="Replicas on on-demand pools.")
    spot_replicas: int = Field(default=0, ge=0, description="Replicas on spot pools.")
    selector: str = Field(default="", description="Label selector of the engine pods.")
    pools: list[PoolStatus] = Field(default_factory=list, description="Per pool.")
    hosted_share: float | None = Field(
        default=None, ge=0, le=1, description="Fraction of requests sent hosted, over the window."
    )
    dollars_per_million_useful_tokens: float | None = Field(
        default=None, ge=0, description="Live cost, US dollars per million useful tokens."
    )
    useful_token_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Generated tokens that were useful, 0..1."
    )
    hosted_dollars_per_hour: float | None = Field(
        default=None, ge=0, description="Hosted spend rate, US dollars per hour."
    )
    spend_dollars_per_hour: float | None = Field(
        default=None, ge=0, description="GPU plus hosted spend rate over the window, $ per hour."
    )
    planned_replicas: dict[str, int] = Field(
        default_factory=dict,
        description="Replicas per pool the last plan wants (recommend mode "
        "shows them without applying), count.",
    )
    planner_state: str | None = Field(
        default=None,
        description="The planner's memory (demand samples, stabilisation window) "
        "as JSON, so a restarted operator plans as if it never stopped.",
    )
    spill_policy: SpillPolicyStatus | None = Field(
        default=None, description="What the router applies until the next plan."
    )
    last_decision: DecisionRecord | None = Field(default=None, description="The last plan and why.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions.")
