"""The router's two kinds of configuration: fixed settings and the live policy.

Settings (listen address, upstreams, timeouts, limits, file paths) come from
the command line and change only with a new pod. The policy is what the
operator's planner decides every period (per-pool concurrency limits, hosted
share and $/hour cap, SLO targets, hosted prices); it arrives as a YAML or
JSON file, normally a mounted ConfigMap key, and `PolicyFile` re-reads it when
it changes, so a new plan applies without a restart. A policy that does not
validate is refused and the last good one stays in force (fail static).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from weir.api._base import describe_validation_error
from weir.api.router import RouterPolicy
from weir.planner.types import SpillPolicy
from weir.planner.usefulness import ItlRule
from weir.router.errors import ConfigError
from weir.serving import ServerLimits

__all__ = ["PolicyFile", "RouterPolicy", "RouterSettings", "parse_policy", "spill_policy"]


def spill_policy(policy: RouterPolicy, pools: set[str]) -> SpillPolicy:
    """The planner's view of a policy (pools not listed get the default limit)."""
    limits = {pool: policy.default_concurrency_limit for pool in pools}
    limits.update(policy.concurrency_limit_by_pool)
    return SpillPolicy(
        concurrency_limit_by_pool=limits,
        hosted_enabled=policy.hosted_enabled and policy.hosted is not None,
        max_hosted_share=policy.max_hosted_share,
        max_hosted_dollars_per_hour=policy.max_hosted_dollars_per_hour,
        max_local_prefill_tokens=(
            math.inf if policy.max_local_prefill_tokens is None else policy.max_local_prefill_tokens
        ),
        max_waiting=policy.max_waiting,
    )


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Is `host` named in `allowed` (host names, IP addresses or CIDR networks)?"""
    if host.lower() in allowed:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_hosted_transport(policy: RouterPolicy, allowed: frozenset[str], source: str) -> None:
    """Refuse a policy whose hosted endpoint would get the API key over plain http.

    https is the rule; http only to a host the router was started with
    (`--allow-insecure-hosted`), e.g. a stand-in on loopback in tests.
    """
    host = policy.hosted.insecure_host() if policy.hosted is not None else None
    if host is not None and not host_allowed(host, allowed):
        raise ConfigError(
            f"{source}: hosted.baseUrl: must be https:// (plain http to {host} is allowed "
            f"only with --allow-insecure-hosted {host})"
        )


def parse_policy(text: str, source: str) -> RouterPolicy:
    """Validate a policy document (YAML or JSON); ConfigError names the bad field."""
    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML or JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the policy must be a mapping")
    try:
        return RouterPolicy.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from exc


@dataclass
class PolicyFile:
    """A policy file read again whenever its content changes (ConfigMap updates swap it)."""

    path: Path
    digest: str = ""

    def read_if_changed(self) -> RouterPolicy | None:
        """The new policy when the file changed since the last call, else None."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {self.path}: {exc.strerror}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.digest:
            return None
        policy = parse_policy(data.decode("utf-8", "replace"), str(self.path))
        self.digest = digest
        return policy


def dump_policy(policy: RouterPolicy) -> str:
    """The file form of a policy (what the operator writes into the ConfigMap)."""
    return json.dumps(policy.model_dump(mode="json", by_alias=True), indent=2)


class RouterSettings(BaseModel):
    """Fixed settings of one router process (command-line flags)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str = Field(min_length=1, description="Model served (as in /v1/models).")
    model_aliases: frozenset[str] = Field(
        default=frozenset(),
        description="Other names clients may ask for the model by; a request naming any "
        "other model is answered 404 model_not_found. Answers name model_name.",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Request size limit.")
    connect_timeout_s: float = Field(default=2.0, gt=0, description="Upstream connect, s.")
    first_token_timeout_s: float = Field(
        default=60.0, gt=0, description="Upstream answer head and first bytes, s."
    )
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Longest gap between chunks.")
    itl_rule: ItlRule = Field(
        default="mean",
        description=(
            "How a stream's ITL is judged: by its mean pace (mean, the simulator's default), "
            "or per token, each token after a gap longer than the ITL target not useful "
            "(per_token: a stall the user saw is waste even when the mean is fine)."
        ),
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive hosted failures that open the breaker."
    )
    breaker_open_s: float = Field(
        default=10.0, gt=0, description="How long the open breaker keeps hosted off, s."
    )
    dedupe_window_s: float = Field(
        default=600.0, ge=0, description="A repeated idempotency key within it is waste."
    )
    share_window_s: float = Field(default=60.0, gt=0, description="Window of the hosted share, s.")
    budget_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Hosted $ in any window this long stay under cap x window / 1 h.",
    )
    max_retry_after_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="Longest hosted Retry-After honoured, s (longer ones are clamped).",
    )
    max_dedupe_keys: int = Field(
        default=100_000, ge=0, le=10_000_000, description="Idempotency keys kept (16 B each)."
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Serve clients without a bearer token (no --client-tokens-file needed).",
    )
    allow_insecure_hosted: frozenset[str] = Field(
        default=frozenset(),
        description="Hosts (names, IPs or CIDRs) the hosted endpoint may be plain http on.",
    )
    metrics_on_api_port: bool = Field(
        default=False,
        description="Also serve /metrics on the API port (spend and caps: off by default).",
    )
    limits: ServerLimits = Field(
        default_factory=ServerLimits, description="Header, timeout and connection bounds."
    )
    hosted_key: str | None = Field(default=None, repr=False, exclude=True)
    client_tokens: frozenset[str] = Field(default=frozenset(), repr=False, exclude=True)

    @model_validator(mode="after")
    def _auth_chosen(self) -> RouterSettings:
        if not self.client_tokens and not self.allow_anonymous:
            raise ValueError(
                "client tokens are required: give --client-tokens-file, or --allow-anonymous "
                "to serve any client"
            )
        return self

    def __repr__(self) -> str:  # secrets never appear, whatever pydantic does
        return f"RouterSettings(model_name={self.model_name!r}, ...)"

    __str__ = __repr__


def read_secret(path: Path, what: str) -> str:
    """A mounted Secret's value (stripped); the message never contains the value."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} from {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{what} file {path} is empty")
    return value


def read_tokens(path: Path) -> frozenset[str]:
    """Client bearer tokens, one per line (blank lines and # comments ignored)."""
    text = read_secret(path, "client tokens")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
