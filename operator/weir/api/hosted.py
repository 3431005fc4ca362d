"""HostedEndpoint: an OpenAI-compatible API used as a capacity tier.

Hosted spill is priced per token (input, cached input and output apart) and
limited by the provider's rate limit; its latency profile tells the planner
whether spilled tokens will still be useful.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from weir.api._base import Spec
from weir.api._types import DnsSubdomain, HostedModelName, SecretDataKey


class HostedLatency(Spec):
    """How fast the hosted endpoint answers, as observed or published."""

    ttft_p50_seconds: float = Field(gt=0, le=600, description="Median time to first token, s.")
    ttft_p95_seconds: float = Field(gt=0, le=600, description="95th pct time to first token, s.")
    itl_seconds: float = Field(gt=0, le=10, description="Mean inter-token latency, s/token.")

    @model_validator(mode="after")
    def _ordered(self) -> HostedLatency:
        if self.ttft_p95_seconds < self.ttft_p50_seconds:
            raise ValueError("ttftP95Seconds: must be >= ttftP50Seconds")
        return self


class SecretKeyRef(Spec):
    """Where the API key lives: a key in a Secret of the endpoint's namespace."""

    name: DnsSubdomain = Field(description="Secret name.")
    key: SecretDataKey = Field(default="api-key", description="Key inside the Secret.")


class HostedEndpointSpec(Spec):
    """An OpenAI-compatible endpoint weir may spill to (namespaced)."""

    base_url: str = Field(
        default="https://api.example.invalid/v1",
        min_length=1,
        max_length=2048,
        description="API base URL, https:// (plain http:// only to a host the router is told "
        "to allow: `weir router --allow-insecure-hosted HOST`); no credentials, query or "
        "fragment.",
    )
    model: HostedModelName = Field(default="hosted-model", description="Model name to ask for.")
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
        gt=0,
        le=1_000_000,
        description="Rate limit, requests per minute; beyond it the endpoint answers 429.",
    )
    prompt_cache_seconds: float = Field(
        default=300.0, ge=0, le=86400, description="How long the provider keeps a prompt cache, s."
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        """The API key is sent to this URL: it must be a plain, well-formed http(s) URL."""
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"baseUrl: not a URL: {exc}") from exc
        if parts.scheme not in ("https", "http"):
            raise ValueError("baseUrl: must start with https://")
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError("baseUrl: must name a host and contain no spaces")
        if parts.username is not None or parts.password is not None:
            raise ValueError("baseUrl: must not carry credentials (use secretRef)")
        if parts.query or parts.fragment or "#" in value or "?" in value:
            raise ValueError("baseUrl: must not have a query or fragment")
        if port == 0:
            raise ValueError("baseUrl: port 0 is not a port")
        return value

    def insecure_host(self) -> str | None:
        """The host when `baseUrl` is plain http (the router must allow it), else None."""
        parts = urlsplit(self.base_url)
        return parts.hostname if parts.scheme == "http" else None

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
