"""A metric exposed on loopback is scraped by the real Prometheus and read back."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from weir_lab.cluster.wait import wait_for


def test_loopback_metric_is_scraped_and_read_back(prometheus):
    registry = CollectorRegistry()
    gauge = Gauge("weir_test_value", "A value set by the test.", ["run"], registry=registry)
    run = uuid.uuid4().hex[:8]
    gauge.labels(run=run).set(42.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        prometheus.add_target(f"test-{run}", f"127.0.0.1:{port}", {"suite": "cluster"})
        query = f'weir_test_value{{run="{run}", suite="cluster"}}'
        result = wait_for(
            lambda: prometheus.client.custom_query(query), f"{query} in Prometheus", 60
        )
        assert len(result) == 1
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["job"] == "local"
    finally:
        server.shutdown()
        thread.join(timeout=10)
