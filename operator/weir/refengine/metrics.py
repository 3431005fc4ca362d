"""Prometheus metrics with the names and labels `trtllm-serve` exports.

One set of PromQL (dashboards, the operator's queries, alert rules) must serve
TensorRT-LLM pods and our stand-in engines alike, so the names, labels and
histogram buckets follow TensorRT-LLM's `tensorrt_llm/metrics/collector.py`.
Every server gets its own `CollectorRegistry`: several engines may run in one
process (tests, the emulated fleet), and a global registry would mix them.
The load gauges are computed at scrape time from the engine, costing nothing
per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from weir.refengine.protocol import EngineStats

PREFIX = "trtllm_"
LABELS = ("model_name", "engine_type")

_E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_TPOT_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip


class _LoadCollector(Collector):
    """Running/waiting/KV gauges read from the engine when Prometheus scrapes."""

    def __init__(self, labels: tuple[str, str], stats: Callable[[], EngineStats]) -> None:
        self._labels = list(labels)
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        for name, doc, value in (
            ("num_requests_running", "Number of active requests", stats.running),
            ("num_requests_waiting", "Number of queued requests", stats.waiting),
            ("kv_cache_utilization", "KV cache utilization", stats.kv_cache_utilization),
        ):
            family = GaugeMetricFamily(PREFIX + name, doc, labels=list(LABELS))
            family.add_metric(self._labels, float(value))
            yield family


class EngineMetrics:
    """The trtllm_ metric set of one engine server, in its own registry."""

    def __init__(self, model_name: str, engine_type: str, stats: Callable[[], EngineStats]) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self._labels = labels = (model_name, engine_type)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            family = Histogram(PREFIX + name, doc, LABELS, buckets=buckets, registry=reg)
            return family.labels(*labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(PREFIX + name, doc, LABELS, registry=reg).labels(*labels)

        self.e2e = histogram(
            "e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            _E2E_BUCKETS,
        )
        self.ttft = histogram(
            "time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            _TTFT_BUCKETS,
        )
        self.tpot = histogram(
            "time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            _TPOT_BUCKETS,
        )
        self.prompt_tokens = counter(
            "prompt_tokens", "Cumulative number of prompt (input) tokens processed."
        )
        self.cached_tokens = counter(
            "prompt_cached_tokens", "Cumulative number of prompt tokens served from the KV cache."
        )
        self.generation_tokens = counter(
            "generation_tokens", "Cumulative number of generation (output) tokens produced."
        )
        self._success = Counter(
            PREFIX + "request_success",
            "Count of successfully processed requests.",
            [*LABELS, "finished_reason"],
            registry=reg,
        )
        self._rejected = Counter(
            "weir_engine_requests_rejected",
            "Requests refused before admission (queue full, rate limit, auth).",
            [*LABELS, "reason"],
            registry=reg,
        )
        reg.register(_LoadCollector(labels, stats))

    def success(self, finished_reason: str) -> None:
        self._success.labels(*self._labels, finished_reason).inc()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(*self._labels, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
