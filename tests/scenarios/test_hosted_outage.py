"""The hosted endpoint fails, first with errors, then with timeouts: the router's breaker
opens, overflow queues locally (or gets a clear 429 with Retry-After, never a reset), and
when the endpoint recovers, spill resumes."""

from __future__ import annotations

import httpx
import pytest

from support.promtext import metric
from support.scenarios import workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster.wait import wait_for

ROUTER_ARGS = '["--first-token-timeout=3", "--breaker-failures=3", "--breaker-open-seconds=5"]'


@pytest.fixture
def operator_env() -> dict[str, str]:
    return {"WEIR_OPERATOR_ROUTER_EXTRA_ARGS": ROUTER_ARGS}


def breaker_open(url: str) -> bool:
    text = httpx.get(f"{url}/metrics", timeout=2).text
    return metric(text, "weir_router_hosted_breaker_open") == 1.0


def test_hosted_outage_opens_the_breaker_and_recovers(loop_for, hosted, operator):
    loop = loop_for(Shape(on_demand=(1, 1), spot=(0, 0)))
    url = loop.wait_router()
    metrics_url = loop.router_metrics_url()
    assert metrics_url is not None
    # one replica is held at its SLO concurrency: at 14 req/s the surplus spills
    traffic = Background(
        url, workload(14.0, 120.0), model=MODEL, api_key=loop.client_token()
    ).start()
    wait_for(lambda: hosted.seen["ok"] >= 5, "spill to the healthy endpoint", 60)
    hosted.mode = "error"
    wait_for(lambda: breaker_open(metrics_url), "the breaker to open on errors", 30, interval_s=0.5)
    wait_for(lambda: traffic.elapsed_s() > 50, "time under errors", 60, interval_s=0.5)
    hosted.mode = "timeout"
    wait_for(lambda: hosted.seen["timeout"] >= 1, "a probe into the timeouts", 30)
    wait_for(
        lambda: breaker_open(metrics_url), "the breaker to open on timeouts", 30, interval_s=0.5
    )
    wait_for(lambda: traffic.elapsed_s() > 80, "time under timeouts", 60, interval_s=0.5)
    hosted.mode = "ok"
    ok_before = hosted.seen["ok"]
    wait_for(lambda: hosted.seen["ok"] > ok_before + 3, "spill to resume after recovery", 40)
    result = traffic.join(200)
    # while the breaker was open, overflow queued locally instead of going hosted
    text = httpx.get(f"{metrics_url}/metrics", timeout=2).text
    queued = metric(
        text, "weir_router_spill_decisions_total", reason="hosted_breaker_open", route="wait"
    )
    assert queued > 0, queued
    failed = result.failed()
    for sent in failed:  # a clear answer: a status and an OpenAI-style error, not a reset
        assert sent.status in (429, 502, 503, 504), (sent.status, sent.error)
        assert "error" in sent.error or "message" in sent.error, sent.error
    assert len(failed) < 0.2 * len(result.sent), f"{len(failed)} of {len(result.sent)} failed"
    assert sum(s.backend == "local" for s in result.sent) > 0.5 * len(result.sent)
