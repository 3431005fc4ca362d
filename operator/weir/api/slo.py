"""What the SRE promises and what they will pay: the SLO and the cost targets.

A token is useful when its request met both latency targets; the attainment
target is the fraction of generated tokens that must be useful. The planner
minimises $ per useful token subject to these two models.
"""

from __future__ import annotations

from pydantic import Field

from weir.api._base import Spec
from weir.api._types import MAX_DOLLARS_PER_HOUR


class SLO(Spec):
    """Latency targets per request, and how many generated tokens must meet them."""

    ttft_seconds: float = Field(
        gt=0, le=600, description="Time to first token target per request, seconds."
    )
    itl_seconds: float = Field(
        gt=0,
        le=10,
        description="Mean inter-token latency target per request, seconds per token.",
    )
    percentile: float = Field(
        default=95.0,
        gt=50,
        lt=100,
        description="Percentile of requests at which the planner checks both targets, percent.",
    )
    useful_token_target: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="Fraction of generated tokens that must be useful (inside both targets).",
    )


class CostTargets(Spec):
    """Spend limits: a hard budget and an optional goal per useful token."""

    budget_dollars_per_hour: float = Field(
        gt=0,
        le=MAX_DOLLARS_PER_HOUR,
        description="Hard limit on GPU plus hosted spend, US dollars per hour.",
    )
    target_dollars_per_million_useful_tokens: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="Goal for $ per million useful tokens; reported against, never enforced.",
    )
