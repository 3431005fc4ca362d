"""The router's Prometheus metrics: what the operator's $ per useful token is computed from.

Each router app has its own `CollectorRegistry` (several routers run in one
test process). Label children are resolved once and cached, because the
`labels()` lookup is the costly part of an observation. Names and labels
(documented for the operator's PromQL in `weir.router`):

    weir_router_requests_total{backend,outcome}            counter
    weir_router_tokens_total{backend,kind,usefulness}      counter
        kind: input (uncached prompt) | cached_input | output
    weir_router_wasted_tokens_total{backend,reason}        counter (output tokens)
        reason: late | cancelled | timeout | failed | duplicate
    weir_router_ttft_seconds{backend}                      histogram
    weir_router_itl_seconds{backend}                       histogram (per-request mean)
    weir_router_prefill_tokens                             histogram (uncached prompt tokens
                                                           per request with usage: the mix
                                                           the planner sizes replicas for)
    weir_router_in_flight_requests{backend}                gauge
    weir_router_waiting_requests                           gauge
    weir_router_hosted_spend_dollars_total                 counter
    weir_router_hosted_spend_cap_dollars_per_hour          gauge
    weir_router_spill_decisions_total{route,reason}        counter
    weir_router_replicas{state}                            gauge (ready | draining)
    weir_router_hosted_breaker_open                        gauge (0 closed, 0.5 half, 1 open)
    weir_router_duplicate_requests_total                   counter
    weir_router_policy_reloads_total{result}               counter (ok | invalid)

backend is `local` or `hosted`, counted per upstream attempt (a request
retried elsewhere before its first token counts once as `failed`), or
`none` for requests the router answered itself. outcome: completed |
cancelled | timeout | failed, or for `none`: rejected (429/503: no
capacity, caps, breaker) | bad_request | unauthorized | too_large | not_found.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from weir.planner.types import MIX_BOUNDS
from weir.router.accounting import Verdict

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.5, 1.0, 2.5)


class RouterMetrics:
    """All metrics of one router, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "weir_router_requests",
            "Requests by backend and outcome.",
            ["backend", "outcome"],
            registry=r,
        )
        # Exported at 0 from the start, so the operator can tell a quiet router from one
        # Prometheus does not scrape (no series at all): see weir.metrics.observe.
        self.requests.labels("local", "completed")
        self.tokens = Counter(
            "weir_router_tokens",
            "Tokens by backend, kind and usefulness.",
            ["backend", "kind", "usefulness"],
            registry=r,
        )
        self.wasted = Counter(
            "weir_router_wasted_tokens",
            "Wasted output tokens by reason.",
            ["backend", "reason"],
            registry=r,
        )
        self.ttft = Histogram(
            "weir_router_ttft_seconds",
            "Time to first token seen by the client.",
            ["backend"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "weir_router_itl_seconds",
            "Mean inter-token latency per request.",
            ["backend"],
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.prefill = Histogram(
            "weir_router_prefill_tokens",
            "Uncached prompt tokens per request.",
            buckets=MIX_BOUNDS,  # the planner's mix buckets
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._state_metrics(r)

    def _state_metrics(self, r: CollectorRegistry) -> None:
        """Gauges and the decision counters (the per-request ones are above)."""
        self.in_flight = Gauge(
            "weir_router_in_flight_requests", "Requests being served.", ["backend"], registry=r
        )
        self.waiting = Gauge(
            "weir_router_waiting_requests", "Requests queued for a local slot.", registry=r
        )
        self.spend = Counter(
            "weir_router_hosted_spend_dollars", "Hosted spend, US dollars.", registry=r
        )
        self.spend_cap = Gauge(
            "weir_router_hosted_spend_cap_dollars_per_hour",
            "Hosted $/h cap in force.",
            registry=r,
        )
        self.decisions = Counter(
            "weir_router_spill_decisions",
            "Admission decisions by route and reason.",
            ["route", "reason"],
            registry=r,
        )
        self.replicas = Gauge(
            "weir_router_replicas", "Local replicas known, by state.", ["state"], registry=r
        )
        self.breaker = Gauge(
            "weir_router_hosted_breaker_open", "Hosted circuit breaker state.", registry=r
        )
        self.duplicates = Counter(
            "weir_router_duplicate_requests", "Requests repeating an idempotency key.", registry=r
        )
        self.reloads = Counter(
            "weir_router_policy_reloads", "Policy file reloads by result.", ["result"], registry=r
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def started(self, backend: str) -> None:
        self._child(self.in_flight, backend).inc()

    def finished(self, backend: str, verdict: Verdict) -> None:
        """One request ended: its outcome, timings and tokens."""
        child = self._child
        child(self.in_flight, backend).dec()
        child(self.requests, backend, verdict.outcome).inc()
        if verdict.ttft_s is not None:
            child(self.ttft, backend).observe(verdict.ttft_s)
        if verdict.itl_s is not None:
            child(self.itl, backend).observe(verdict.itl_s)
        usefulness = "useful" if verdict.useful else "wasted"
        uncached = max(verdict.input_tokens - verdict.cached_tokens, 0)
        if verdict.input_tokens:
            self.prefill.observe(uncached)
        if uncached:
            child(self.tokens, backend, "input", usefulness).inc(uncached)
        if verdict.cached_tokens:
            child(self.tokens, backend, "cached_input", usefulness).inc(verdict.cached_tokens)
        if verdict.output_tokens:  # a per-token verdict may keep some of them
            kept = min(max(verdict.useful_tokens, 0), verdict.output_tokens)
            lost = verdict.output_tokens - kept
            if kept:
                child(self.tokens, backend, "output", "useful").inc(kept)
            if lost:
                child(self.tokens, backend, "output", "wasted").inc(lost)
                child(self.wasted, backend, verdict.waste).inc(lost)

    def refused(self, outcome: str) -> None:
        """A request answered by the router itself (4xx, 429, 503)."""
        self._child(self.requests, "none", outcome).inc()

    def decision(self, route: str, reason: str) -> None:
        self._child(self.decisions, route, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
