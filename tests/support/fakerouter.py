"""A real exporter with the router's metric names, labelled like a discovered router pod.

It stands in for the router where a test needs known traffic in Prometheus
(the router itself is tested on its own); `drive` feeds it a steady rate
from a background thread until stopped.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from weir.planner.types import MIX_BOUNDS


class FakeRouter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("weir_router_requests", "", ["backend", "outcome"], registry=r)
        self.tokens = Counter(
            "weir_router_tokens", "", ["backend", "kind", "usefulness"], registry=r
        )
        self.spend = Counter("weir_router_hosted_spend_dollars", "", registry=r)
        self.prefill = Histogram("weir_router_prefill_tokens", "", buckets=MIX_BOUNDS, registry=r)
        self.gpu = Gauge("weir_gpu_spend_dollars_per_hour", "", registry=r)
        self.running = Gauge("trtllm_num_requests_running", "", registry=r)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=r)
        self._stop = threading.Event()
        self._driver: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def traffic(self, scale: float) -> None:
        """A fixed mix: 3 local and 1 hosted request, 75% of output tokens useful.

        The local prompts are 500 tokens; the hosted one's usage is not reported, so
        it is counted in the requests and missing from the prefill histogram.
        """
        self.requests.labels("local", "ok").inc(3 * scale)
        self.requests.labels("hosted", "ok").inc(1 * scale)
        self.tokens.labels("local", "output", "useful").inc(300 * scale)
        self.tokens.labels("local", "output", "wasted").inc(100 * scale)
        self.tokens.labels("local", "input", "useful").inc(2000 * scale)
        self.spend.inc(0.01 * scale)
        for _ in range(round(3 * scale)):
            self.prefill.observe(500)

    def local_load(self, requests: float) -> None:
        """`requests` local requests of 1,000 prompt and 150 useful output tokens."""
        self.requests.labels("local", "ok").inc(requests)
        self.tokens.labels("local", "output", "useful").inc(150 * requests)
        self.tokens.labels("local", "input", "useful").inc(1000 * requests)

    def drive(self, rps: float, tick_s: float = 0.25) -> None:
        """Feed `rps` local requests per second until `close`."""

        def run() -> None:
            while not self._stop.wait(tick_s):  # the load generator's own tick
                self.local_load(rps * tick_s)

        self._driver = threading.Thread(target=run, daemon=True)
        self._driver.start()

    def close(self) -> None:
        self._stop.set()
        if self._driver:
            self._driver.join(timeout=5)
        self.server.shutdown()
        self.thread.join(timeout=10)
