"""The metrics source against a real Prometheus, and its handling of odd answers."""

from __future__ import annotations

import math
import socket
import uuid

from support.fakerouter import FakeRouter
from weir.metrics.source import PrometheusSource, parse_histogram, parse_vector
from weir_lab.cluster.wait import wait_for


def scraped(prometheus, query: str, value: float) -> bool:
    result = prometheus.client.custom_query(query)
    return bool(result) and math.isclose(float(result[0]["value"][1]), value)


def test_one_query_set_reads_every_deployment(prometheus, cluster):
    run = uuid.uuid4().hex[:6]
    routers = {name: FakeRouter() for name in ("a", "b")}
    try:
        for name, router in routers.items():
            router.gpu.set(7.8)
            router.running.set(float("nan"))
            prometheus.add_target(
                f"router-{run}-{name}",
                router.address,
                {"namespace": f"ns-{run}", "weir_dev_deployment": name},
            )
        for step in (1, 2, 3):
            for router in routers.values():
                router.traffic(step)
            total = 3 * sum(range(1, step + 1))
            for name in routers:
                query = (
                    f'weir_router_requests_total{{backend="local",'
                    f'weir_dev_deployment="{name}",namespace="ns-{run}"}}'
                )
                wait_for(lambda q=query, t=total: scraped(prometheus, q, t), query, 30)
        source = PrometheusSource(cluster.settings.prometheus_url, window_s=60)
        snapshot = source.collect(now_s=1000.0)
    finally:
        for router in routers.values():
            router.close()
    assert snapshot.healthy and snapshot.error is None
    assert snapshot.queries == len(source.templates.rendered(60))
    for name in routers:
        metrics = snapshot.for_deployment(f"ns-{run}", name)
        assert metrics.requests_per_s and metrics.requests_per_s > 0
        assert math.isclose(
            metrics.useful_token_fraction or 0, 0.75, rel_tol=0.02
        )  # rate() extrapolates each series
        assert math.isclose(metrics.hosted_share or 0, 0.25, rel_tol=0.02)
        assert metrics.gpu_dollars_per_hour == 7.8
        expected = (
            (7.8 / 3600 + (metrics.hosted_dollars_per_s or 0))
            / (metrics.useful_tokens_per_s or 1)
            * 1e6
        )
        assert math.isclose(metrics.dollars_per_million_useful_tokens or 0, expected)
        histogram = dict(metrics.prefill_histogram)
        assert histogram[256.0] == 0 and histogram[512.0] > 0
        assert histogram[512.0] == histogram[math.inf]  # every reported prompt is 500 tokens
    unknown = snapshot.for_deployment("nowhere", "x")
    assert unknown.requests_per_s == 0 and unknown.dollars_per_million_useful_tokens is None


def test_unreachable_prometheus_gives_an_unhealthy_snapshot():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    snapshot = PrometheusSource(f"http://127.0.0.1:{port}", timeout_s=1).collect(5.0)
    assert not snapshot.healthy
    assert snapshot.error and "failed" in snapshot.error
    assert snapshot.taken_at_s == 5.0


def test_odd_answers_are_handled_one_by_one():
    result = [
        {"metric": {"namespace": "n", "d": "a"}, "value": [0, "1.5"]},
        {"metric": {"namespace": "n", "d": "a"}, "value": [0, "2.5"]},
        {"metric": {"namespace": "n", "d": "b"}, "value": [0, "NaN"]},
        {"metric": {"namespace": "n", "d": "c"}, "value": [0, "+Inf"]},
        {"metric": {"d": "orphan"}, "value": [0, "9"]},
        {"metric": {"namespace": "n", "d": "e"}, "value": [0, "oops"]},
    ]
    values, notes = parse_vector(result, "namespace", "d")
    assert values == {("n", "a"): 4.0, ("n", "b"): None, ("n", "c"): None, ("n", "e"): None}
    assert any("2 series, summed" in n for n in notes)
    assert any("non-finite" in n and "n/b" in n for n in notes)


def test_histogram_answers_are_sorted_summed_and_dropped_when_unreadable():
    def bucket(d: str, le: str, value: str) -> dict:
        return {"metric": {"namespace": "n", "d": d, "le": le}, "value": [0, value]}

    result = [
        bucket("a", "+Inf", "3"),
        bucket("a", "64.0", "1"),
        bucket("a", "64.0", "0.5"),  # a second router pod of the same deployment
        bucket("a", "32.0", "0"),
        bucket("b", "32.0", "1"),
        bucket("b", "+Inf", "NaN"),
        {"metric": {"namespace": "n", "d": "c"}, "value": [0, "1"]},  # no le
    ]
    histograms, notes = parse_histogram(result, "namespace", "d")
    assert histograms == {("n", "a"): ((32.0, 0.0), (64.0, 1.5), (math.inf, 3.0))}
    assert sorted(n.split(":")[0] for n in notes) == ["n/b", "n/c"]
