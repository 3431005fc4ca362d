"""Live progress of a run: what weir reports about itself, sampled once a second.

A thread reads the InferenceDeployment's status (replicas per pool, live $
per useful token, useful fraction, concurrency limits) so the replay's
event loop never waits on the API server; the terminal shows the latest
sample and the client-side picture (offered rate, hosted share of the last
10 s, failures). The samples are kept for the plots.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from rich.table import Table

from weir_lab.closedloop.harness import Loop
from weir_lab.closedloop.traffic import Replay


@dataclass(frozen=True)
class Sample:
    """One look at the deployment, `t_s` seconds into the run."""

    t_s: float
    ready: dict[str, int]
    desired: dict[str, int]
    dollars_per_million_useful: float | None
    useful_fraction: float | None
    limits: dict[str, int]  # the router's per-replica concurrency limit, by pool


@dataclass
class Sampler:
    """Samples `loop` every `every_s` seconds in a thread until `stop`."""

    loop: Loop
    t0: float
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    # engine pod -> (pool, seconds into the run when it became Ready), from the pods
    # themselves: the operator's status lags by up to a control period
    ready_at: dict[str, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _pods(self) -> None:
        offset = time.time() - (time.monotonic() - self.t0)  # unix time of t0
        for pod in self.loop.engine_pods():
            name = pod.metadata.name
            if name in self.ready_at or pod.metadata.deletion_timestamp is not None:
                continue
            for c in pod.status.conditions or []:
                if c.type == "Ready" and c.status == "True" and c.last_transition_time:
                    pool = pod.metadata.labels.get("weir.dev/pool", "")
                    self.ready_at[name] = (pool, c.last_transition_time.timestamp() - offset)

    def ready_by(self, t_s: float) -> dict[str, int]:
        """Engine pods per pool that were Ready at `t_s` seconds into the run."""
        counts: dict[str, int] = {}
        for pool, since in self.ready_at.values():
            if since <= t_s:
                counts[pool] = counts.get(pool, 0) + 1
        return counts

    def _once(self) -> None:
        self._pods()
        status: dict[str, Any] = self.loop.status()
        pools = status.get("pools") or []
        self.samples.append(
            Sample(
                t_s=time.monotonic() - self.t0,
                ready={p["pool"]: int(p.get("readyReplicas", 0)) for p in pools},
                desired={p["pool"]: int(p.get("desiredReplicas", 0)) for p in pools},
                dollars_per_million_useful=status.get("dollarsPerMillionUsefulTokens"),
                useful_fraction=status.get("usefulTokenFraction"),
                limits=dict((status.get("spillPolicy") or {}).get("concurrencyLimitByPool") or {}),
            )
        )

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._once()
            except ApiException:
                continue  # the API server is busy; the next second will tell

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def table(now_s: float, replay: Replay, sampler: Sampler, total_s: float) -> Table:
    """The progress line shown while traffic runs."""
    recent = replay.in_window(now_s - 10, now_s)
    hosted = sum(1 for s in recent if s.backend == "hosted")
    sample = sampler.samples[-1] if sampler.samples else None
    grid = Table(
        title=f"{now_s:4.0f} / {total_s:.0f} s of traffic (req/s, hosted: last 10 s; "
        "$/M useful, useful: weir's live status)",
        expand=False,
    )
    for column in ("req/s", "hosted", "ready/desired", "$/M useful", "useful", "failed"):
        grid.add_column(column, no_wrap=column == "ready/desired")
    pools = "-"
    if sample is not None:
        pools = ", ".join(
            f"{pool}: {sample.ready.get(pool, 0)}/{want}" for pool, want in sample.desired.items()
        )
    grid.add_row(
        f"{len(recent) / 10:.1f}",
        f"{hosted / len(recent):.0%}" if recent else "-",
        pools,
        _fmt(sample.dollars_per_million_useful if sample else None, "{:.2f}"),
        _fmt(sample.useful_fraction if sample else None, "{:.4f}"),
        str(len(replay.failed()) + replay.dropped),
    )
    return grid
