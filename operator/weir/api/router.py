"""The router's live policy: what the operator writes and every router reads.

One model for both ends of the contract: the operator's control step builds
it from the plan (`weir.controller.control.router_policy`), the operator's
children put it, with the SLO and the hosted endpoint's spec (never its key),
into the router's ConfigMap, and `weir.router.config` parses that file back
into this same model, refusing what does not validate (the last good policy
stays in force). camelCase on the wire, like the CRDs.
"""

from __future__ import annotations

from pydantic import Field

from weir.api._base import Resource
from weir.api.hosted import HostedEndpointSpec
from weir.api.slo import SLO


class RouterPolicy(Resource):
    """What the planner tells the router; camelCase in the file, like the CRDs."""

    concurrency_limit_by_pool: dict[str, int] = Field(
        default_factory=dict, description="In-flight requests per replica, by pool name."
    )
    default_concurrency_limit: int = Field(
        default=8, ge=0, description="Limit for replicas of a pool not listed above."
    )
    hosted_enabled: bool = Field(default=False, description="May overflow go to hosted?")
    max_hosted_share: float = Field(
        default=0.0, ge=0, le=1, description="Hosted fraction of recent requests, at most."
    )
    max_hosted_dollars_per_hour: float = Field(
        default=0.0, ge=0, description="Hard cap on hosted spend, US dollars per hour."
    )
    max_local_prefill_tokens: float | None = Field(
        default=None, gt=0, description="Longer prompts go hosted when allowed; none: no limit."
    )
    max_waiting: int = Field(
        default=256, ge=0, description="Requests queued for a local slot; 0: answer 429 at once."
    )
    queue_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Longest wait for a local slot, then 429."
    )
    slo: SLO = Field(
        default_factory=lambda: SLO(ttft_seconds=1.0, itl_seconds=0.1),
        description="TTFT and ITL targets that decide which tokens are useful.",
    )
    hosted: HostedEndpointSpec | None = Field(
        default=None, description="The endpoint to spill to: URL, model name and prices."
    )
    hosted_default_max_tokens: int = Field(
        default=1024,
        ge=1,
        description="max_tokens set on hosted requests that have none, so spend is bounded.",
    )
    draining_pods: list[str] = Field(
        default_factory=list,
        description="Pods that get no new request (spot notice); their open streams finish.",
    )
    ttft_guard: bool = Field(
        default=True,
        description="Treat a replica whose recent TTFT is over the target as full.",
    )
