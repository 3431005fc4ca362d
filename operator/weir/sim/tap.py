"""Latency quantiles as a Prometheus histogram would give them, for peers that scale on them.

llm-d's SLO-aware recipe scales on the pool's P90 TTFT and P90 TPOT over a
one-minute window, read one scrape late. The simulator's Observation carries
no latencies (weir does not scale on them), so a run that hosts such a peer
swaps in a recorder that also writes each local completion into a tap the
peer reads. Nothing else changes: the same events, the same accounting.

This is a stop-gap until the runner's Observation carries windowed latency
quantiles itself (asked of the simulator's owner in issue 12's report).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import numpy as np

from weir.api.profile import EngineProfile
from weir.sim.policy import Policy
from weir.sim.recorder import Recorder, RunResult
from weir.sim.replica import Job
from weir.sim.runner import RunConfig, Simulation
from weir.sim.scenario import Scenario
from weir.sim.traces import Request


class LatencyTap:
    """Local completions as (time, TTFT, ITL), queried over a delayed window."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.ttft: list[float] = []
        self.itl: list[float] = []

    def record(self, at_s: float, ttft_s: float, itl_s: float) -> None:
        """One local request finished at `at_s` (kept sorted by time)."""
        index = bisect.bisect_right(self.times, at_s)
        self.times.insert(index, at_s)
        self.ttft.insert(index, ttft_s)
        self.itl.insert(index, itl_s)

    def quantiles(self, start_s: float, end_s: float, q: float) -> tuple[float, float] | None:
        """(TTFT, ITL) at quantile `q` over completions in [start, end); None when none."""
        lo = bisect.bisect_left(self.times, start_s)
        hi = bisect.bisect_left(self.times, end_s)
        if hi <= lo:
            return None
        ttft = np.quantile(np.asarray(self.ttft[lo:hi]), q)
        itl = np.quantile(np.asarray(self.itl[lo:hi]), q)
        return float(ttft), float(itl)


class _TappedRecorder(Recorder):
    """The run's recorder, writing local completions into a tap as well."""

    def __init__(self, base: Recorder, tap: LatencyTap) -> None:
        super().__init__(base.pools, base.expected, base.start_s, base.end_s)
        self.tap = tap

    def completed(
        self,
        job: Job,
        end_s: float,
        ttft: float,
        itl: float,
        useful: bool,
        hosted: bool,
        dollars: float,
    ) -> None:
        if not hosted:
            self.tap.record(end_s, ttft, itl)
        super().completed(job, end_s, ttft, itl, useful, hosted, dollars)


def simulate_tapped(
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    policy: Policy,
    config: RunConfig,
    tap: LatencyTap,
) -> RunResult:
    """`weir.sim.runner.simulate`, with local latencies written into `tap`."""
    if not trace:
        raise ValueError("simulate needs a non-empty trace")
    sim = Simulation(trace, scenario, profiles, policy, config)
    sim.recorder = _TappedRecorder(sim.recorder, tap)
    return sim.run()
