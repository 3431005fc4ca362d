"""The metrics source against a Prometheus that answers wrongly, over real HTTP on loopback.

A reply without `data`, a scalar or a string where a vector belongs, a body
that is not JSON, a 500: each gives an unhealthy snapshot that says which
query failed and why, never an exception into the control loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from weir.metrics.source import PrometheusSource


class _Handler(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"{}")

    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_prometheus() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _answer(result_type: str, result: object) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": result_type, "result": result}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (200, b'{"status": "success"}', "KeyError"),
        (200, _answer("scalar", [1700000000.0, "1"]), "instant vector"),
        (200, _answer("string", [1700000000.0, "hello"]), "instant vector"),
        (200, _answer("vector", [[1, 2]]), "instant vector"),
        (200, b"<html>proxy error</html>", "failed"),
        (500, b'{"status": "error", "error": "boom"}', "failed"),
    ],
)
def test_a_malformed_answer_gives_an_unhealthy_snapshot_that_says_why(
    odd_prometheus, status, body, why
):
    odd_prometheus.answer = (status, body)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{odd_prometheus.server_address[1]}"
    snapshot = PrometheusSource(url, timeout_s=2).collect(42.0)
    assert not snapshot.healthy
    assert snapshot.error is not None
    assert snapshot.error.startswith("query requests_per_s failed")
    assert why in snapshot.error
    assert snapshot.deployments == {}


def test_a_vector_with_odd_series_keeps_the_good_ones(odd_prometheus):
    good = {"metric": {"namespace": "n", "weir_dev_deployment": "a"}, "value": [0, "2"]}
    odd_prometheus.answer = (200, _answer("vector", [good, "junk", {"value": [0, "1"]}]))  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{odd_prometheus.server_address[1]}"
    snapshot = PrometheusSource(url, timeout_s=2).collect(42.0)
    assert not snapshot.healthy  # a non-object series is not what a vector query returns
    odd_prometheus.answer = (200, _answer("vector", [good, {"value": [0, "1"]}]))  # type: ignore[attr-defined]
    snapshot = PrometheusSource(url, timeout_s=2).collect(43.0)
    assert snapshot.healthy
    metrics = snapshot.for_deployment("n", "a")
    assert metrics.requests_per_s == 2.0 and metrics.present
