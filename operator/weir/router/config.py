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
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from weir.api._base import Resource, describe_validation_error
from weir.api.hosted import HostedEndpointSpec
from weir.api.slo import SLO
from weir.planner.types import SpillPolicy
from weir.router.errors import ConfigError


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

    def spill_policy(self, pools: set[str]) -> SpillPolicy:
        """The planner's view of this policy (pools not listed get the default limit)."""
        limits = {pool: self.default_concurrency_limit for pool in pools}
        limits.update(self.concurrency_limit_by_pool)
        return SpillPolicy(
            concurrency_limit_by_pool=limits,
            hosted_enabled=self.hosted_enabled and self.hosted is not None,
            max_hosted_share=self.max_hosted_share,
            max_hosted_dollars_per_hour=self.max_hosted_dollars_per_hour,
            max_local_prefill_tokens=(
                math.inf if self.max_local_prefill_tokens is None else self.max_local_prefill_tokens
            ),
            max_waiting=self.max_waiting,
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
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Request size limit.")
    connect_timeout_s: float = Field(default=2.0, gt=0, description="Upstream connect, s.")
    first_token_timeout_s: float = Field(
        default=60.0, gt=0, description="Upstream answer head and first bytes, s."
    )
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Longest gap between chunks.")
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
    hosted_key: str | None = Field(default=None, repr=False, exclude=True)
    client_tokens: frozenset[str] = Field(default=frozenset(), repr=False, exclude=True)

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
