"""HostedEndpoint: an OpenAI-compatible API used as a capacity tier.

Hosted spill is priced per token (input, cached input and output apart) and
limited by the provider's rate limit; its latency profile tells the planner
whether spilled tokens will still be useful.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from weir.api._base import Resource


class HostedLatency(Resource):
    """How fast the hosted endpoint answers, as observed or published."""

    ttft_p50_seconds: float = Field(gt=0, le=600, description="Median time to first token, s.")
    ttft_p95_seconds: float = Field(gt=0, le=600, description="95th pct time to first token, s.")
    itl_seconds: float = Field(gt=0, le=10, description="Mean inter-token latency, s/token.")

    @model_validator(mode="after")
    def _ordered(self) -> HostedLatency:
        if self.ttft_p95_seconds < self.ttft_p50_seconds:
            raise ValueError("ttftP95Seconds: must be >= ttftP50Seconds")
        return self


class SecretKeyRef(Resource):
    """Where the API key lives: a key in a Secret of the endpoint's namespace."""

    name: str = Field(min_length=1, description="Secret name.")
    key: str = Field(default="api-key", min_length=1, description="Key inside the Secret.")


class HostedEndpointSpec(Resource):
    """An OpenAI-compatible endpoint weir may spill to (namespaced)."""

    base_url: str = Field(
        default="https://api.example.invalid/v1", min_length=1, description="API base URL."
    )
    model: str = Field(default="hosted-model", min_length=1, description="Model name to ask for.")
    secret_ref: SecretKeyRef | None = Field(default=None, description="Secret with the API key.")
    dollars_per_million_input_tokens: float = Field(
        ge=0, le=1000, description="Price of uncached prompt tokens, $ per million."
    )
    dollars_per_million_cached_input_tokens: float = Field(
        ge=0, le=1000, description="Price of cached prompt tokens, $ per million."
    )
    dollars_per_million_output_tokens: float = Field(
        ge=0, le=1000, description="Price of generated tokens, $ per million."
    )
    latency: HostedLatency = Field(description="Latency profile of the endpoint.")
    requests_per_minute: int = Field(
        gt=0, description="Rate limit, requests per minute; beyond it the endpoint answers 429."
    )
    prompt_cache_seconds: float = Field(
        default=300.0, ge=0, le=86400, description="How long the provider keeps a prompt cache, s."
    )

    @model_validator(mode="after")
    def _cached_not_dearer(self) -> HostedEndpointSpec:
        if self.dollars_per_million_cached_input_tokens > self.dollars_per_million_input_tokens:
            raise ValueError(
                "dollarsPerMillionCachedInputTokens: must not exceed dollarsPerMillionInputTokens"
            )
        return self

    def request_dollars(
        self, input_tokens: float, cached_tokens: float, output_tokens: float
    ) -> float:
        """Price of one request; cached tokens are part of input_tokens."""
        uncached = max(input_tokens - cached_tokens, 0.0)
        return (
            uncached * self.dollars_per_million_input_tokens
            + min(cached_tokens, input_tokens) * self.dollars_per_million_cached_input_tokens
            + output_tokens * self.dollars_per_million_output_tokens
        ) / 1e6
