"""The figures of a run, from the raw Prometheus counters and gauges of that run.

$ per useful token over a run is (GPU $ + hosted $) / useful tokens, each
taken from what was scraped: counters are read at the run's start and end
(a counter with no sample before the start counts from zero), and the GPU
side is the operator's `weir_gpu_spend_dollars_per_hour` gauge (every
replica, idle and warming ones included) integrated over the raw samples
between the two times. No `rate()` or `increase()` (they extrapolate), so
anyone can recompute the same numbers from the same series by hand.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from prometheus_api_client import PrometheusConnect


@dataclass(frozen=True)
class Figures:
    """What one deployment did between `start_s` and `end_s` (Unix seconds)."""

    start_s: float
    end_s: float
    useful_tokens: float
    output_tokens: float
    requests: float
    hosted_requests: float
    hosted_dollars: float
    gpu_dollars_by_pool: dict[str, float]

    @property
    def gpu_dollars(self) -> float:
        return sum(self.gpu_dollars_by_pool.values())

    @property
    def dollars_per_million_useful_tokens(self) -> float:
        total = self.gpu_dollars + self.hosted_dollars
        return total / self.useful_tokens * 1e6 if self.useful_tokens > 0 else float("inf")

    @property
    def useful_token_fraction(self) -> float:
        return self.useful_tokens / self.output_tokens if self.output_tokens > 0 else 0.0

    @property
    def hosted_share(self) -> float:
        return self.hosted_requests / self.requests if self.requests > 0 else 0.0


class Reader:
    """Instant and range reads of one deployment's series."""

    def __init__(self, prom: PrometheusConnect, namespace: str, deployment: str) -> None:
        self.prom = prom
        self.labels = f'namespace="{namespace}",weir_dev_deployment="{deployment}"'

    def _sum_at(self, metric: str, selector: str, at_s: float) -> float:
        labels = f"{self.labels},{selector}" if selector else self.labels
        answer: list[dict[str, Any]] = self.prom.custom_query(
            f"sum({metric}{{{labels}}})", params={"time": f"{at_s:.3f}"}
        )
        return float(answer[0]["value"][1]) if answer else 0.0

    def delta(self, metric: str, selector: str, start_s: float, end_s: float) -> float:
        return self._sum_at(metric, selector, end_s) - self._sum_at(metric, selector, start_s)

    def integrate_by(
        self, metric: str, label: str, start_s: float, end_s: float
    ) -> dict[str, float]:
        """Integral over time (hours) of a gauge, per value of `label`, from raw samples:
        each sample holds until the next one. The range reaches a minute before the
        start, so the sample in force at the start counts from the start. A series'
        last sample holds two of its scrape intervals at most (`series_end`): a series
        whose target went away (an earlier run's operator pod) stops there, rather than
        counting on to the end of this run."""
        span = max(1, round(end_s - start_s)) + 60
        answer: list[dict[str, Any]] = self.prom.custom_query(
            f"{metric}{{{self.labels}}}[{span}s]", params={"time": f"{end_s:.3f}"}
        )
        totals: dict[str, float] = {}
        for series in answer:
            key = str(series["metric"].get(label, ""))
            samples = [(float(t), float(v)) for t, v in series["values"]]
            until = (*(t for t, _ in samples[1:]), series_end(samples, end_s))
            for (t, v), t_next in zip(samples, until, strict=True):
                seconds = max(0.0, min(t_next, end_s) - max(t, start_s))
                totals[key] = totals.get(key, 0.0) + v * seconds / 3600.0
        return totals


def series_end(samples: list[tuple[float, float]], end_s: float) -> float:
    """Until when a series' last sample is in force: the end, or two of its median
    scrape intervals after it when that comes first (its target went away). A lone
    sample holds to the end."""
    if len(samples) < 2:
        return end_s
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(samples))
    return min(end_s, samples[-1][0] + 2 * gaps[len(gaps) // 2])


def measure(
    prom: PrometheusConnect, namespace: str, deployment: str, start_s: float, end_s: float
) -> Figures:
    """The run's figures from what Prometheus scraped."""
    read = Reader(prom, namespace, deployment)
    tokens = "weir_router_tokens_total"
    requests = "weir_router_requests_total"
    return Figures(
        start_s=start_s,
        end_s=end_s,
        useful_tokens=read.delta(tokens, 'kind="output",usefulness="useful"', start_s, end_s),
        output_tokens=read.delta(tokens, 'kind="output"', start_s, end_s),
        requests=read.delta(requests, 'backend!="none"', start_s, end_s),
        hosted_requests=read.delta(requests, 'backend="hosted"', start_s, end_s),
        hosted_dollars=read.delta("weir_router_hosted_spend_dollars_total", "", start_s, end_s),
        gpu_dollars_by_pool=read.integrate_by(
            "weir_gpu_spend_dollars_per_hour", "pool", start_s, end_s
        ),
    )
