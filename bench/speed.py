"""Speed checks for issue 3, printed as numbers (not timed tests).

- planner: milliseconds per decision over a day-like sequence of snapshots
  (generated, varying demand and mix), against the 5 ms target;
- simulator: seconds to simulate one hour of a trace at 10x its rate with
  the weir policy, against the 60 s target.

Run from the repository root:
    .venv/bin/python bench/speed.py [--trace ../shared/data/traces/AzureLLMInferenceTrace_conv.csv]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from weir.planner.optimise import plan
from weir.planner.types import MixBucket, PlannerState, PoolObservation, Snapshot
from weir.sim.baselines import WeirPolicy
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import load_scenario, load_scenario_profiles
from weir.sim.traces import duration_s, load_trace, scale_rate


def _snapshot(t: float, rate: float) -> Snapshot:
    n = rate * 60
    mix = tuple(
        MixBucket(b, n * s, n * s * b * 0.7, n * s * b * 0.7, n * s * 150)
        for b, s in ((512.0, 0.3), (1448.0, 0.45), (4096.0, 0.2), (16384.0, 0.05))
    )
    return Snapshot(t, 60.0, rate, rate * 150, mix, {"spot": PoolObservation(3)})


def planner_speed(scenario_path: Path, decisions: int) -> list[float]:
    scenario = load_scenario(scenario_path)
    profiles = load_scenario_profiles(scenario, Path("engines/profiles"))
    spec = scenario.planning_spec()
    used = {b.pool: profiles[b.pool] for b in scenario.deployment.pools}
    state: PlannerState | None = None
    times = []
    for i in range(decisions):
        now = 15.0 * i
        rate = 20 + 15 * math.sin(i / 40) + (i % 7)
        start = time.perf_counter()
        result = plan(_snapshot(now, rate), spec, used, state, now)
        times.append((time.perf_counter() - start) * 1000)
        state = result.state
    return times


def sim_speed(trace_path: Path, scenario_path: Path, factor: float) -> tuple[float, float, int]:
    scenario = load_scenario(scenario_path)
    profiles = load_scenario_profiles(scenario, Path("engines/profiles"))
    trace = load_trace(trace_path)
    hour = [r for r in trace if r.arrival_s < 3600.0]
    work = scale_rate(hour, factor, seed=0)
    start = time.perf_counter()
    simulate(
        work, scenario, profiles, WeirPolicy(scenario, profiles), RunConfig(seed=0, preroll_s=0.0)
    )
    return time.perf_counter() - start, duration_s(work) / 3600.0, len(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--trace", type=Path, default=Path("../shared/data/traces/AzureLLMInferenceTrace_conv.csv")
    )
    parser.add_argument("--scenario", type=Path, default=Path("bench/scenarios/default.yaml"))
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--factor", type=float, default=10.0)
    args = parser.parse_args()
    times = sorted(planner_speed(args.scenario, args.decisions))
    mean = statistics.fmean(times)
    p99 = times[int(0.99 * (len(times) - 1))]
    print(
        f"planner: {len(times)} decisions, mean {mean:.2f} ms, "
        f"p50 {times[len(times) // 2]:.2f} ms, "
        f"p99 {p99:.2f} ms; target 5 ms -> mean/target {mean / 5:.2f}"
    )
    seconds, hours, requests = sim_speed(args.trace, args.scenario, args.factor)
    per_hour = seconds / hours
    print(
        f"simulator: {requests:,} requests ({hours:.2f} h of trace at {args.factor:g}x) "
        f"in {seconds:.1f} s "
        f"= {per_hour:.1f} s per trace-hour; target 60 s -> ratio {per_hour / 60:.2f}"
    )


if __name__ == "__main__":
    main()
