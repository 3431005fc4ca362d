"""Pods have processes: the router pod routes to engine pods at their own addresses,
and Prometheus scrapes both through the supervisor's discovery."""

from __future__ import annotations

import asyncio
import json

import httpx

from support.doctor import run_doctor
from weir.planner.types import MIX_BOUNDS
from weir.sim.traces import Request
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import replay
from weir_lab.cluster.wait import wait_for


def test_requests_flow_through_router_pod_to_engine_pods(loop_for):
    loop = loop_for(Shape(on_demand=(1, 2), spot=(0, 0), cold_start_s=3.0))
    url = loop.wait_router()
    assert url.startswith("http://198.18."), url
    wait_for(lambda: loop.ready_engines() >= 1, "an engine to be ready", 60)
    health = httpx.get(f"{url}/readyz", timeout=5)
    assert health.status_code == 200
    # two prompt lengths, so the planner's mix (from the router's histogram) has two buckets
    schedule = [Request(i * 0.1, 90 if i % 2 else 1400, 32) for i in range(20)]
    result = asyncio.run(replay(url, schedule, model=MODEL, api_key=loop.client_token()))
    assert not result.failed(), result.failed()[:3]
    assert {s.backend for s in result.sent} == {"local"}
    assert all(s.chunks == 32 for s in result.sent)
    wait_for(
        lambda: loop.counter("weir_router_tokens_total", 'kind="output"') >= 20 * 32,
        "the router's token counter in Prometheus, labelled by deployment",
        60,
    )
    wait_for(
        lambda: (
            loop.query(f'sum(trtllm_num_requests_running{{namespace="{loop.namespace}"}}) >= 0')
            >= 0
            and loop.prom.custom_query(
                f'trtllm_num_requests_running{{namespace="{loop.namespace}"}}'
            )
        ),
        "the engine pod's metrics in Prometheus",
        60,
    )

    def bound_of(tokens: int) -> float:  # the router's histogram bucket of a prompt
        return min(b for b in MIX_BOUNDS if b >= tokens)

    def mix_bounds() -> set[float]:
        state = json.loads(loop.status().get("plannerState") or "{}")
        return {b["prefill_tokens_le"] for b in state.get("lastMix", [])}

    wait_for(
        lambda: {bound_of(90), bound_of(1400)} <= mix_bounds(),
        "the planner's mix to hold the short and the long prompts in buckets of their own",
        60,
    )
    # the planner reports what it learned of the engines' speed (or that it has no data yet)
    decision = loop.status().get("lastDecision") or {}
    assert any(r.startswith("capacity ") for r in decision.get("reasons", [])), decision
    # and `weir doctor` finds this deployment's router and engine series where the queries look
    findings = run_doctor(loop.settings.kubeconfig, loop.prom.url).findings
    mine = [f for f in findings if f["subject"].startswith(f"{loop.namespace}/")]
    assert {f["check"] for f in mine} >= {"operator", "metrics"}, mine
    assert all(f["ok"] for f in mine if f["check"] in ("operator", "metrics")), mine
