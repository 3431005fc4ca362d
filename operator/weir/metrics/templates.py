"""PromQL templates, one per quantity, overridable for other metric names.

Every template aggregates `by ({by})`, the labels that identify one
InferenceDeployment (its namespace and the pod label weir.dev/deployment,
which Prometheus' Kubernetes discovery turns into `weir_dev_deployment`), so a
single query answers for every deployment at once: the number of queries per
cycle does not grow with the number of deployments. `{window}` is the range
of the sliding window.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from weir.metrics.snapshot import ATTAINMENT_WINDOW_S


def _tokens(selector: str) -> str:
    """Rate of the router's token counter for one selector, by deployment."""
    return "sum by ({by}) (rate(weir_router_tokens_total{{" + selector + "}}[{window}]))"


# One query per quantity; the snapshot's DeploymentMetrics has a field of each name.
QUERY_NAMES = (
    "requests_per_s",
    "hosted_requests_per_s",
    "input_tokens_per_s",
    "cached_input_tokens_per_s",
    "hosted_dollars_per_s",
    "gpu_dollars_per_hour",
)

# Histogram queries: answered by deployment and `le`, read as cumulative rates per bucket.
HISTOGRAM_NAMES = ("prefill_histogram",)

# Split queries: answered by deployment and more labels, read as a value per label value
# (joined by "/" when there are several), so one query carries several quantities:
# - output_tokens: generated tokens per second by usefulness (useful | wasted);
# - local_tokens: the local replicas' output tokens over the attainment window, by
#   usefulness (both halves of the attainment feedback's fraction);
# - engines: the engines' own evidence of their speed, by pool and quantity (tpot_sum,
#   tpot_count, running, replicas, tokens, requests, e2e_sum, e2e_count), for capacity
#   learned online.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "output_tokens": ("usefulness",),
    "local_tokens": ("usefulness",),
    "engines": ("pool_label", "quantity"),
}


def _engine(quantity: str, expression: str) -> str:
    return f'label_replace({expression}, "quantity", "{quantity}", "", "")'


_BY_POOL = "by ({by}, {pool})"
_ENGINES = " or ".join(
    _engine(q, e)
    for q, e in (
        (
            "tpot_sum",
            f"sum {_BY_POOL} (rate(trtllm_time_per_output_token_seconds_sum[{{window}}]))",
        ),
        (
            "tpot_count",
            f"sum {_BY_POOL} (rate(trtllm_time_per_output_token_seconds_count[{{window}}]))",
        ),
        ("running", f"sum {_BY_POOL} (avg_over_time(trtllm_num_requests_running[{{window}}]))"),
        (
            "replicas",
            f"count {_BY_POOL} (avg_over_time(trtllm_num_requests_running[{{window}}]))",
        ),
        ("tokens", f"sum {_BY_POOL} (increase(trtllm_generation_tokens_total[{{window}}]))"),
        ("requests", f"sum {_BY_POOL} (rate(trtllm_request_success_total[{{window}}]))"),
        ("e2e_sum", f"sum {_BY_POOL} (rate(trtllm_e2e_request_latency_seconds_sum[{{window}}]))"),
        (
            "e2e_count",
            f"sum {_BY_POOL} (rate(trtllm_e2e_request_latency_seconds_count[{{window}}]))",
        ),
    )
)


class QueryTemplates(BaseSettings):
    """The query set; override any field with WEIR_QUERY_<FIELD> to match your metric names."""

    model_config = SettingsConfigDict(env_prefix="WEIR_QUERY_", frozen=True)

    namespace_label: str = Field(default="namespace", description="Label holding the namespace.")
    deployment_label: str = Field(
        default="weir_dev_deployment", description="Label holding the InferenceDeployment name."
    )
    pool_label: str = Field(
        default="weir_dev_pool", description="Label holding an engine pod's CapacityPool."
    )
    requests_per_s: str = Field(
        default='sum by ({by}) (rate(weir_router_requests_total{{backend!="none"}}[{window}]))',
        description="Requests routed per second.",
    )
    hosted_requests_per_s: str = Field(
        default='sum by ({by}) (rate(weir_router_requests_total{{backend="hosted"}}[{window}]))',
        description="Requests sent to the hosted endpoint per second.",
    )
    output_tokens: str = Field(
        default=(
            'sum by ({by}, usefulness) (rate(weir_router_tokens_total{{kind="output"}}[{window}]))'
        ),
        description="Generated tokens per second, by usefulness (useful | wasted).",
    )
    input_tokens_per_s: str = Field(
        default=_tokens('kind="input"'),
        description="Uncached prompt tokens per second.",
    )
    cached_input_tokens_per_s: str = Field(
        default=_tokens('kind="cached_input"'),
        description="Cached prompt tokens per second.",
    )
    hosted_dollars_per_s: str = Field(
        default="sum by ({by}) (rate(weir_router_hosted_spend_dollars_total[{window}]))",
        description="Hosted spend, dollars per second.",
    )
    gpu_dollars_per_hour: str = Field(
        default="sum by ({by}) (avg_over_time(weir_gpu_spend_dollars_per_hour[{window}]))",
        description="GPU spend rate of every replica over the window (the operator exports it).",
    )
    local_tokens: str = Field(
        default=(
            "sum by ({by}, usefulness) (increase(weir_router_tokens_total"
            '{{backend="local",kind="output"}}[{attainment_window}]))'
        ),
        description="Local replicas' output tokens over the attainment window, by usefulness.",
    )

    engines: str = Field(
        default=_ENGINES,
        description="The engines' speed evidence by pool and quantity (capacity learning).",
    )

    prefill_histogram: str = Field(
        default="sum by ({by}, le) (rate(weir_router_prefill_tokens_bucket[{window}]))",
        description="Requests per second by uncached prompt length (cumulative `le` buckets).",
    )

    def by(self) -> str:
        return f"{self.namespace_label}, {self.deployment_label}"

    def rendered(self, window_s: float) -> dict[str, str]:
        """Every query of the set, with the window and grouping filled in."""
        window = f"{max(1, round(window_s))}s"
        attainment = f"{round(ATTAINMENT_WINDOW_S)}s"
        names = (*QUERY_NAMES, *HISTOGRAM_NAMES, *SPLIT_NAMES)
        return {
            n: str(getattr(self, n)).format(
                by=self.by(), window=window, attainment_window=attainment, pool=self.pool_label
            )
            for n in names
        }
