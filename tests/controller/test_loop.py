"""The control loop against the recording fake of the cluster port: no API server, milliseconds.

Restarts (a new operator process is a new LoopContext over the same stored
objects), Prometheus going away, a refused apply, resync cadence and a spot
notice, each asserted on what the loop wrote, applied and announced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.test_control import PROFILES, busy, example
from support.fakecluster import FakeCluster
from weir.controller.cache import CachedCluster, WatchCache
from weir.controller.children import ChildSettings
from weir.controller.loop import LoopContext, MetricsCache, control_step, node_reclaimed
from weir.controller.opmetrics import OperatorMetrics
from weir.controller.port import ClusterError
from weir.metrics.snapshot import DeploymentMetrics, MetricsSnapshot

NS, NAME = "team-a", "llm"


@dataclass
class Source:
    """A metrics source the test steers: healthy with `metrics`, or down."""

    metrics: DeploymentMetrics
    healthy: bool = True
    collected: int = 0

    def collect(self, now_s: float) -> MetricsSnapshot:
        self.collected += 1
        if not self.healthy:
            return MetricsSnapshot(now_s, 120.0, False, "connection refused")
        return MetricsSnapshot(now_s, 120.0, True, deployments={(NS, NAME): self.metrics})


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _cluster() -> FakeCluster:
    spec, pools, hosted = example()
    fake = FakeCluster(pools=dict(pools), hosted={(NS, spec.hosted.endpoint): hosted})
    fake.add(NS, NAME, spec)
    return fake


def _operator(fake: FakeCluster, source: Source, clock: Clock) -> LoopContext:
    """A freshly started operator: nothing in memory, everything read from the cluster."""
    exported = OperatorMetrics()
    return LoopContext(
        cluster=fake,
        children=ChildSettings(router_image="weir:test"),
        profiles=PROFILES,
        metrics=MetricsCache(source, max_age_s=0.0, exported=exported),
        exported=exported,
        clock=clock,
        resync_every=3,
    )


def _conditions(fake: FakeCluster) -> dict[str, dict]:
    status = fake.deployments[(NS, NAME)]["status"]
    return {c["type"]: c for c in status["conditions"]}


async def _steps(ctx: LoopContext, clock: Clock, count: int, period: float = 15.0) -> None:
    for _ in range(count):
        await control_step(ctx, NS, NAME)
        clock.now += period


async def test_a_restart_while_prometheus_is_down_holds_the_fleet() -> None:
    fake, clock = _cluster(), Clock()
    source = Source(busy(300.0))
    await _steps(_operator(fake, source, clock), clock, 6)
    before = fake.engine_replicas(NS, NAME)
    assert sum(before.values()) > 2, before  # demand scaled it well above the minimum
    source.healthy = False
    restarted = _operator(fake, source, clock)  # new process: no planner memory
    await _steps(restarted, clock, 3)
    assert fake.engine_replicas(NS, NAME) == before
    conditions = _conditions(fake)
    assert conditions["MetricsAvailable"]["status"] == "False"
    assert "connection refused" in conditions["MetricsAvailable"]["message"]
    assert conditions["Degraded"]["status"] == "True"
    assert any(e.reason == "PlanHeld" for e in fake.events)


async def test_a_refused_apply_says_so_in_status_and_the_loop_goes_on() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    await _steps(ctx, clock, 1)
    assert _conditions(fake)["Ready"]["status"] == "True"
    fake.fail_next(
        "apply_children", ClusterError("apply Deployment llm-engine: 422 Invalid", False)
    )
    ctx.applied.clear()  # the next step must apply, not just observe
    delay = await control_step(ctx, NS, NAME)
    ready = _conditions(fake)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ApplyFailed"
    assert "422 Invalid" in ready["message"]
    assert delay == 15.0  # permanent: no fast retry loop
    assert [e.reason for e in fake.events].count("ApplyFailed") == 1
    clock.now += 15.0
    await control_step(ctx, NS, NAME)  # the API server accepts again
    assert _conditions(fake)["Ready"]["status"] == "True"
    assert fake.called("apply_children") == 3


async def test_a_temporary_failure_retries_soon() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    fake.fail_next("apply_children", ClusterError("apply: 503 Unavailable", True))
    assert await control_step(ctx, NS, NAME) == ctx.retry_s
    fake.fail_next("write_status", ClusterError("write: 409 Conflict", True))
    assert await control_step(ctx, NS, NAME) == ctx.retry_s


async def test_unchanged_children_are_observed_and_resynced_every_few_steps() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    await _steps(ctx, clock, 6, period=1.0)  # steady demand: the same children each step
    applies = fake.called("apply_children")
    observes = fake.called("observe_children")
    assert applies + observes == 6
    assert 2 <= applies <= 3  # the first step and each resync (every 3 steps)
    assert observes >= 3


async def test_a_spot_notice_drains_the_node_and_is_reported() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(100.0)), clock)
    await _steps(ctx, clock, 2)
    fake.nodes["gpu-spot-0"] = [(NS, NAME, "llm-engine-spot-abc"), ("other", "x", "x-engine-1")]
    await node_reclaimed(ctx, "gpu-spot-0", "spot reclaim taint")
    assert ("drain_node", "gpu-spot-0") in fake.calls
    warned = [e for e in fake.events if e.reason == "SpotInterruption"]
    assert [e.name for e in warned] == [NAME]  # the other owner does not exist: no event
    assert "llm-engine-spot-abc" in warned[0].message
    await _steps(ctx, clock, 1)
    spot = _conditions(fake)["SpotInterrupted"]
    assert spot["status"] == "True" and "gpu-spot-0" in spot["message"]
    clock.now += ctx.spot_condition_s
    await _steps(ctx, clock, 1)
    assert _conditions(fake)["SpotInterrupted"]["status"] == "False"


async def test_a_deleted_deployment_and_an_unreadable_one_change_nothing() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    fake.fail_next("read_deployment", ClusterError("read: 500", True))
    assert await control_step(ctx, NS, NAME) == ctx.retry_s
    del fake.deployments[(NS, NAME)]
    assert await control_step(ctx, NS, "llm") == ctx.retry_s
    assert fake.called("apply_children") == 0 and fake.called("write_status") == 0


async def test_a_ready_router_without_series_is_unscraped_not_idle() -> None:
    fake, clock = _cluster(), Clock()
    source = Source(busy(300.0))
    ctx = _operator(fake, source, clock)
    await _steps(ctx, clock, 4)
    before = fake.engine_replicas(NS, NAME)
    assert sum(before.values()) > 2
    source.metrics = DeploymentMetrics()  # Prometheus lost the target: no series at all
    await _steps(ctx, clock, 3)
    assert fake.engine_replicas(NS, NAME) == before  # held, not scaled to the minimum
    available = _conditions(fake)["MetricsAvailable"]
    assert available["status"] == "False"
    assert "no series" in available["message"]


def _cached(fake: FakeCluster) -> CachedCluster:
    """The operator's cluster port as it runs: reads answered by the watch-fed cache."""
    cache = WatchCache()
    for name, spec in fake.pools.items():
        cache.pool_seen(name, spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    for (ns, name), spec in fake.hosted.items():
        cache.hosted_seen(ns, name, spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    return CachedCluster(fake, cache)


async def test_a_warm_step_reads_nothing_and_writes_no_unchanged_status() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    ctx.cluster = _cached(fake)
    ctx.heartbeat_every = 4
    for _ in range(8):  # settle: the planner's window holds the first plan for a while
        await control_step(ctx, NS, NAME, fake.read_deployment(NS, NAME))
        clock.now += 15.0
    fake.calls.clear()
    for _ in range(3):  # kopf hands the daemon the body it watched
        await control_step(ctx, NS, NAME, fake.read_deployment(NS, NAME))
        clock.now += 15.0
    reads = [c for c in fake.calls if c[0].startswith(("read_", "observe_"))]
    assert reads == [("read_deployment", NS, NAME)] * 3  # the test's own hand-over only
    assert fake.called("write_status") <= 1  # at most the heartbeat
    assert fake.called("apply_children") <= 1  # at most the periodic resync


async def test_status_changes_are_written_at_once_and_heartbeats_in_between() -> None:
    fake, clock = _cluster(), Clock()
    source = Source(busy(5.0))
    ctx = _operator(fake, source, clock)
    ctx.cluster = _cached(fake)
    for _ in range(8):
        await control_step(ctx, NS, NAME)
        clock.now += 15.0
    written = fake.called("write_status")
    source.healthy = False  # a change a person must see: MetricsAvailable flips
    await control_step(ctx, NS, NAME)
    assert fake.called("write_status") == written + 1
    assert _conditions(fake)["MetricsAvailable"]["status"] == "False"
    fake.calls.clear()
    for _ in range(8):
        clock.now += 15.0
        await control_step(ctx, NS, NAME)
    assert 2 <= fake.called("write_status") <= 3  # one heartbeat every 4 unchanged steps


def _router(fake: FakeCluster) -> dict:
    return next(
        m
        for m in fake.children[(NS, NAME)]
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("router")
    )


async def test_routers_ask_clients_for_the_token_the_operator_created() -> None:
    fake, clock = _cluster(), Clock()
    ctx = _operator(fake, Source(busy(5.0)), clock)
    await _steps(ctx, clock, 2)
    assert list(fake.secrets) == [(NS, "llm-clients")]  # created once, never rotated
    assert fake.called("ensure_secret") == 2
    pod = _router(fake)["spec"]["template"]
    args = pod["spec"]["containers"][0]["args"]
    assert "--client-tokens-file=/etc/weir/clients/tokens" in args
    assert "--allow-anonymous" not in args
    assert {"name": "clients", "secret": {"secretName": "llm-clients"}} in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9091"  # /metrics apart
    token = next(iter(fake.secrets[(NS, "llm-clients")].values()))
    assert all(token not in str(m) for m in fake.children[(NS, NAME)])


async def test_plain_http_hosted_endpoints_need_the_operators_leave() -> None:
    fake, clock = _cluster(), Clock()
    (key,) = fake.hosted
    fake.hosted[key] = fake.hosted[key].model_copy(update={"base_url": "http://10.1.2.3:8000/v1"})
    ctx = _operator(fake, Source(busy(5.0)), clock)
    await _steps(ctx, clock, 1)
    ready = _conditions(fake)["Ready"]
    assert ready["status"] == "False" and "plain http to 10.1.2.3" in ready["message"]
    assert (NS, NAME) not in fake.children  # nothing applied
    ctx.children = replace(ctx.children, insecure_hosted=("10.1.0.0/16",))
    await _steps(ctx, clock, 1)
    assert _conditions(fake)["Ready"]["status"] == "True"
    args = _router(fake)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allow-insecure-hosted=10.1.0.0/16" in args


def _hf_tokens(fake: FakeCluster) -> list[dict]:
    """The HF_TOKEN entries of every engine container the loop applied."""
    return [
        env
        for m in fake.children.get((NS, NAME), [])
        if m["kind"] == "Deployment" and not m["metadata"]["name"].endswith("router")
        for container in m["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if env["name"] == "HF_TOKEN"
    ]


async def test_engines_read_a_weights_secret_only_once_it_names_the_deployment() -> None:
    fake, clock = _cluster(), Clock()
    body = fake.deployments[(NS, NAME)]
    body["spec"]["model"]["weightsSecretRef"] = {"name": "hf"}
    fake.secrets[(NS, "hf")] = {"token": "hf_never_in_status"}
    fake.weights_readers[(NS, "hf")] = ("another-deployment",)
    ctx = _operator(fake, Source(busy(5.0)), clock)
    ctx.cluster = _cached(fake)
    await _steps(ctx, clock, 2)
    ready = _conditions(fake)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidReference"
    assert "does not allow llm" in ready["message"]
    assert _hf_tokens(fake) == []  # nothing that reads it was applied
    fake.weights_readers[(NS, "hf")] = ("another-deployment", NAME)
    await _steps(ctx, clock, 2)  # a refusal is never remembered: asked again at once
    assert _conditions(fake)["Ready"]["status"] == "True"
    secret_ref = {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert _hf_tokens(fake) and all(
        e == {"name": "HF_TOKEN", "valueFrom": secret_ref} for e in _hf_tokens(fake)
    )
    checks = fake.called("check_weights_secret")
    await _steps(ctx, clock, 3)  # a good answer is kept for a while: warm steps ask nothing
    assert fake.called("check_weights_secret") == checks
    assert "hf_never_in_status" not in str(fake.deployments[(NS, NAME)]["status"])
