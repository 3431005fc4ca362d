"""Spot interruptions and unavailability replayed from real traces.

A memoryless interruption at the declared rate gives about one reclaim in a
thousand runs and never two at once; real spot capacity comes and goes in
bursts. The traces in ../shared/data/spot (SkyPilot's collection, data of
"Can't Be Late", Wu et al., NSDI '24) count, per tick, the instances still
running (preemption) or obtainable (availability) on AWS. They are V100, K80
and CPU instances, so they give the *shape* of risk and the declared rate
gives its *level*:

- preemption: a drop from n to m running is a reclaim of (n - m) / n of the
  fleet, all at once (a four-node file gives correlated reclaims). Trace
  time runs at declared / native speed, so the reclaims of the pool's
  replicas come at the rate the pool declares, in the trace's clusters. A
  one-node file is replayed per replica, each from its own offset;
- availability: ticks with nothing obtainable hold new spot launches until
  capacity returns (in real time: how long capacity stays away is a duration
  of the zone, not a rate to rescale).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from weir.sim.scenario import Scenario

T = TypeVar("T")


@dataclass(frozen=True)
class SpotTrace:
    """One trace file: a count per tick of `gap_s` seconds."""

    gap_s: float
    counts: tuple[int, ...]

    @property
    def width(self) -> int:
        """Instances the trace tracked at once (1 for a one-node file)."""
        return max(self.counts) if self.counts else 0

    @property
    def span_s(self) -> float:
        """Length of the trace in its own time."""
        return self.gap_s * len(self.counts)

    def reclaims(self) -> list[tuple[float, float]]:
        """(trace time, fraction of the running fleet lost) for every drop."""
        out = []
        for i in range(1, len(self.counts)):
            before, after = self.counts[i - 1], self.counts[i]
            if after < before and before > 0:
                out.append((i * self.gap_s, (before - after) / before))
        return out

    def native_rate_per_hour(self) -> float:
        """Reclaimed instances per running instance-hour in the trace."""
        lost = sum(
            before - after
            for before, after in zip(self.counts, self.counts[1:], strict=False)
            if after < before
        )
        hours = sum(self.counts) * self.gap_s / 3600.0
        return lost / hours if hours > 0 else 0.0


@lru_cache(maxsize=16)
def load_spot_trace(path: str) -> SpotTrace:
    """Read one trace file ({"metadata": {"gap_seconds": G}, "data": [...]})."""
    try:
        obj = json.loads(Path(path).read_text())
        gap = float(obj["metadata"]["gap_seconds"])
        counts = tuple(int(n) for n in obj["data"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a spot trace: {exc}") from exc
    if gap <= 0 or not counts:
        raise ValueError(f"{path}: a spot trace needs gap_seconds > 0 and data")
    return SpotTrace(gap, counts)


def reclaims_between(
    trace: SpotTrace, declared_per_hour: float, offset_s: float, start_s: float, end_s: float
) -> list[tuple[float, float]]:
    """Reclaims (run time, fraction) in [start_s, end_s) with the trace scaled to the rate.

    Run time t reads trace time `offset_s + t * speed` (cyclically), with
    speed = declared / native rate.
    """
    native = trace.native_rate_per_hour()
    if declared_per_hour <= 0 or native <= 0:
        return []
    speed = declared_per_hour / native
    events = trace.reclaims()
    span = trace.span_s
    out: list[tuple[float, float]] = []
    lo = offset_s + start_s * speed
    hi = offset_s + end_s * speed
    cycle = math.floor(lo / span)
    while cycle * span < hi:
        for at, fraction in events:
            tau = cycle * span + at
            if lo <= tau < hi:
                out.append(((tau - offset_s) / speed, fraction))
        cycle += 1
    return out


def available_from(trace: SpotTrace, offset_s: float, now_s: float) -> float:
    """The first run time >= now at which the trace has an instance to give (inf if never)."""
    if not any(trace.counts):
        return math.inf
    n = len(trace.counts)
    tick = math.floor((offset_s + now_s) / trace.gap_s)
    for step in range(n + 1):
        if trace.counts[(tick + step) % n] > 0:
            at = (tick + step) * trace.gap_s - offset_s
            return max(now_s, at)
    return math.inf


class SpotRisk:
    """When a run's spot replicas are reclaimed, and when new ones can be had.

    Without a trace, a replica's interruption is memoryless at its pool's
    declared rate (one draw at launch). With a preemption trace, a one-node
    file is replayed per replica from its own offset and a wider file per
    pool (`pool_reclaims`); with an availability trace, launches wait for
    capacity (`launch_at`). Offsets are drawn from the run's seed.
    """

    def __init__(self, scenario: Scenario, rng: random.Random, horizon_s: float) -> None:
        self.scenario = scenario
        self.rng = rng
        self.horizon_s = horizon_s
        ref = scenario.stresses.spot_trace
        self.preemption = load_spot_trace(ref.preemption) if ref and ref.preemption else None
        self.availability = load_spot_trace(ref.availability) if ref and ref.availability else None
        self.offsets = {
            pool: (
                rng.uniform(0, self.preemption.span_s) if self.preemption else 0.0,
                rng.uniform(0, self.availability.span_s) if self.availability else 0.0,
            )
            for pool in sorted(scenario.pools)
        }

    def _spot(self, pool: str) -> bool:
        spec = self.scenario.pools[pool]
        return spec.capacity_type == "spot" and spec.interruptions_per_hour > 0

    def pool_reclaims(self) -> list[tuple[float, str, float]]:
        """(time, pool, fraction of its live replicas) of a multi-node trace's reclaims."""
        trace = self.preemption
        if trace is None or trace.width <= 1:
            return []
        out = []
        for pool in sorted(self.scenario.pools):
            if self._spot(pool):
                rate = self.scenario.pools[pool].interruptions_per_hour
                offset = self.offsets[pool][0]
                for at, fraction in reclaims_between(trace, rate, offset, 0.0, self.horizon_s):
                    out.append((at, pool, fraction))
        return out

    def interruption_s(self, pool: str, now_s: float) -> float | None:
        """When a replica launched now will be reclaimed on its own (None: not on its own)."""
        if not self._spot(pool):
            return None
        rate = self.scenario.pools[pool].interruptions_per_hour
        trace = self.preemption
        if trace is None:
            return now_s + self.rng.expovariate(rate)
        if trace.width > 1:
            return None
        offset = self.rng.uniform(0, trace.span_s)
        reclaims = reclaims_between(trace, rate, offset, now_s, self.horizon_s)
        return reclaims[0][0] if reclaims else None

    def launch_at(self, pool: str, now_s: float) -> float:
        """When a replica asked for now can start (inf: capacity never returns)."""
        spec = self.scenario.pools[pool]
        if self.availability is None or spec.capacity_type != "spot":
            return now_s
        return available_from(self.availability, self.offsets[pool][1], now_s)

    def chosen(self, live: list[T], fraction: float) -> list[T]:
        """The replicas a reclaim of `fraction` of the pool takes (stochastic rounding)."""
        count = min(len(live), math.floor(fraction * len(live) + self.rng.random()))
        return self.rng.sample(live, count)
