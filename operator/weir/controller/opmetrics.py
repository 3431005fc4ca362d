"""The operator's own metrics: the number it optimises, where Prometheus and Grafana look.

`weir_gpu_spend_dollars_per_hour` is also an input: averaged over the window
by PromQL it is the GPU side of the live $ per useful token (idle and warming
replicas included), so the operator must be scraped with `honor_labels` (its
`namespace` label names the deployment's namespace, not the operator's).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from weir.planner.speed import SpeedBelief

_LABELS = ["namespace", "weir_dev_deployment"]


class OperatorMetrics:
    """Gauges per InferenceDeployment, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cost = Gauge(
            "weir_dollars_per_million_useful_tokens",
            "Live US dollars per million useful tokens over the window.",
            _LABELS,
            registry=r,
        )
        self.useful = Gauge(
            "weir_useful_token_fraction",
            "Generated tokens that were useful, over the window, 0..1.",
            _LABELS,
            registry=r,
        )
        self.hosted_share = Gauge(
            "weir_hosted_request_share",
            "Share of requests sent hosted over the window, 0..1.",
            _LABELS,
            registry=r,
        )
        self.planned = Gauge(
            "weir_planned_replicas",
            "Replicas the last plan wants, by pool.",
            [*_LABELS, "pool"],
            registry=r,
        )
        self.speed = Gauge(
            "weir_capacity_speed_ratio",
            "Learned engine speed relative to the profile, by pool (1: as profiled).",
            [*_LABELS, "pool", "bound"],
            registry=r,
        )
        self.replicas = Gauge(
            "weir_replicas",
            "Engine replicas that exist, by pool.",
            [*_LABELS, "pool", "capacity_type"],
            registry=r,
        )
        self.gpu_spend = Gauge(
            "weir_gpu_spend_dollars_per_hour",
            "GPU spend rate of the replicas that exist, US dollars per hour.",
            [*_LABELS, "pool"],
            registry=r,
        )
        self.spend = Gauge(
            "weir_spend_dollars_per_hour",
            "GPU plus hosted spend rate over the window, US dollars per hour.",
            _LABELS,
            registry=r,
        )
        self.budget = Gauge(
            "weir_budget_dollars_per_hour",
            "The deployment's hard budget, US dollars per hour.",
            _LABELS,
            registry=r,
        )
        self.target = Gauge(
            "weir_useful_token_target",
            "The SLO's target useful token fraction, 0..1.",
            _LABELS,
            registry=r,
        )
        self.interruptions = Counter(
            "weir_spot_interruptions",
            "Spot reclaims that drained engine pods of the deployment.",
            _LABELS,
            registry=r,
        )
        self.steps = Counter(
            "weir_control_steps", "Control steps taken, all deployments.", registry=r
        )
        self.step_seconds = Histogram(
            "weir_control_step_seconds",
            "Duration of one deployment's control step, seconds.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.step_gap = Histogram(
            "weir_control_step_gap_seconds",
            "Time between two steps of the same deployment (the effective period), seconds.",
            buckets=(0.5, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120),
            registry=r,
        )
        self.queries = Counter("weir_metrics_queries", "PromQL queries sent.", registry=r)
        self.collections = Counter(
            "weir_metrics_collections", "Metrics snapshots taken (one query set each).", registry=r
        )
        self.held = Gauge(
            "weir_plan_held", "1 when the last plan was held (stale metrics).", _LABELS, registry=r
        )

    def observe(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = (namespace, name)
        for gauge, field in (
            (self.cost, "dollarsPerMillionUsefulTokens"),
            (self.useful, "usefulTokenFraction"),
            (self.hosted_share, "hostedShare"),
        ):
            value = status.get(field)
            if isinstance(value, int | float):
                gauge.labels(*key).set(value)
        for pool, count in (status.get("plannedReplicas") or {}).items():
            self.planned.labels(*key, pool).set(count)
        for row in status.get("pools") or []:
            self.replicas.labels(*key, row["pool"], row["capacityType"]).set(row["replicas"])
            self.gpu_spend.labels(*key, row["pool"]).set(row["dollarsPerHour"])
        decision = status.get("lastDecision") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if decision:
            self.held.labels(*key).set(1 if conditions.get("Degraded") == "True" else 0)

    def targets(self, namespace: str, name: str, budget: float, useful_target: float) -> None:
        """The spec's targets, so alert rules compare series with series."""
        self.budget.labels(namespace, name).set(budget)
        self.target.labels(namespace, name).set(useful_target)

    def speeds(
        self, namespace: str, name: str, beliefs: tuple[tuple[str, SpeedBelief], ...]
    ) -> None:
        """The learned speed of each pool: its estimate and the value the plan used."""
        for pool, belief in beliefs:
            self.speed.labels(namespace, name, pool, "estimate").set(belief.speed)
            self.speed.labels(namespace, name, pool, "planned").set(belief.planning_speed)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted deployment."""
        for gauge in (
            self.cost,
            self.useful,
            self.hosted_share,
            self.held,
            self.planned,
            self.replicas,
            self.gpu_spend,
            self.speed,
        ):
            for labels in list(gauge._metrics):
                if labels[:2] == (namespace, name):
                    gauge.remove(*labels)
