"""A run's summary: summary.json, the baselines from the simulator, plots, a table.

The measured side comes from Prometheus (`figures`); the client side (failed
requests, how fast spill followed saturation) from the replay's own records;
the baselines (all traffic hosted, and a static fleet sized for the peak)
from the simulator replaying the very same schedule under the same pools,
prices and SLO, so the three numbers compare like for like.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.profile import EngineProfile
from weir.sim.bench import make_policies, run_policies
from weir.sim.runner import RunConfig
from weir.sim.scenario import Scenario, TelemetrySettings
from weir.sim.traces import Request
from weir_lab.closedloop.figures import Figures
from weir_lab.closedloop.progress import Sample, Sampler
from weir_lab.closedloop.traffic import Replay

BASELINES = ("all_hosted", "static_p95", "weir")


def spill_reaction_s(
    replay: Replay, samples: Sequence[Sample], ready_by: Callable[[float], dict[str, int]]
) -> float:
    """Longest delay, over saturation episodes, between the first request that arrived
    while local replicas were saturated and the first one sent hosted (0 when the first
    one went hosted). Saturated: the client-side count of local requests in flight
    reached the router's limit (per-replica limit from the nearest sample x the engine
    pods Ready at that instant; pods turn Ready before the router sees them, so this
    limit is never below the router's and saturation is never claimed early). Gaps
    between arrivals are not counted: nothing can spill before a request arrives; a
    first arrival served locally means a slot had freed (no episode)."""
    if not samples:
        return 0.0
    local = sorted((s.at_s, s.end_s) for s in replay.sent if s.backend == "local" and s.end_s)
    ordered = sorted(replay.sent, key=lambda s: s.at_s)
    arrivals = [s.at_s for s in ordered]
    hosted = sorted(s.at_s for s in replay.sent if s.backend == "hosted")
    times = [s.t_s for s in samples]
    ends: list[float] = []
    worst, episode_open = 0.0, False
    for start, end in local:
        while ends and ends[0] <= start:
            heapq.heappop(ends)
        heapq.heappush(ends, end)  # the ends of local requests in flight at `start`
        sample = samples[max(0, bisect.bisect_right(times, start) - 1)]
        limit = sum(sample.limits.get(p, 0) * n for p, n in ready_by(start).items())
        if limit <= 0 or len(ends) < limit:
            episode_open = False
            continue
        if episode_open:
            continue
        episode_open = True
        after = bisect.bisect_right(arrivals, start)
        if after >= len(arrivals) or ordered[after].backend in ("local", "hosted"):
            continue  # a slot had freed, or it spilled at once
        first_hosted = bisect.bisect_right(hosted, start)
        if first_hosted >= len(hosted):
            return math.inf
        worst = max(worst, hosted[first_hosted] - arrivals[after])
    return worst


def scenario_of(
    pools: Mapping[str, CapacityPoolSpec],
    hosted: HostedEndpointSpec,
    deployment: InferenceDeploymentSpec,
    profile_stem: str,
    scrape_s: float,
    window_s: float,
) -> Scenario:
    on_demand = next(n for n, p in pools.items() if p.capacity_type == "on-demand")
    return Scenario(
        name="closed-loop",
        profile=profile_stem,
        pools=dict(pools),
        hosted=hosted,
        deployment=deployment,
        telemetry=TelemetrySettings(
            scrape_interval_seconds=scrape_s, scrape_delay_seconds=scrape_s, window_seconds=window_s
        ),
        on_demand_pool=on_demand,
    )


def baselines(
    schedule: Sequence[Request], scenario: Scenario, profiles: Mapping[str, EngineProfile]
) -> dict[str, dict[str, float]]:
    """The same schedule in the simulator: all hosted, static for the peak, and weir."""
    config = RunConfig(seed=0, preroll_s=60.0, drain_limit_s=300.0)
    policies = make_policies(BASELINES, schedule, scenario, profiles, config)
    run = run_policies(policies, schedule, scenario, profiles, config)
    return {name: result.summary() for name, result in run.results.items()}


def summary(
    figures: Figures,
    replay: Replay,
    sampler: Sampler,
    simulated: Mapping[str, Mapping[str, float]],
    target: float,
) -> dict[str, Any]:
    spend = {pool: round(v, 6) for pool, v in sorted(figures.gpu_dollars_by_pool.items())}
    spend["hosted"] = round(figures.hosted_dollars, 6)
    return {
        "dollars_per_million_useful_tokens": figures.dollars_per_million_useful_tokens,
        "useful_token_fraction": figures.useful_token_fraction,
        "useful_token_target": target,
        "hosted_share": figures.hosted_share,
        "failed_requests": len(replay.failed()) + replay.dropped,
        "max_spill_reaction_s": spill_reaction_s(replay, sampler.samples, sampler.ready_by),
        "spend_dollars": spend,
        "useful_tokens": figures.useful_tokens,
        "output_tokens": figures.output_tokens,
        "requests": len(replay.sent),
        "window": {"start_unix_s": figures.start_s, "end_unix_s": figures.end_s},
        "baselines": {
            name: {
                "dollars_per_million_useful_tokens": row["dollars_per_million_useful_tokens"],
                "useful_token_fraction": row["useful_token_fraction"],
                "hosted_request_share": row["hosted_request_share"],
            }
            for name, row in simulated.items()
        },
    }


def write(out: Path, data: Mapping[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


def plots(out: Path, replay: Replay, samples: Sequence[Sample], ttft_target_s: float) -> list[Path]:
    """Replicas by pool with the offered rate; client TTFT by backend against the SLO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made = []
    fig, ax = plt.subplots(figsize=(9, 4))
    pools = sorted({p for s in samples for p in s.desired})
    t = [s.t_s for s in samples]
    for pool in pools:
        ax.step(t, [s.ready.get(pool, 0) for s in samples], where="post", label=f"{pool} ready")
        ax.step(
            t,
            [s.desired.get(pool, 0) for s in samples],
            where="post",
            linestyle=":",
            label=f"{pool} desired",
        )
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("engine replicas")
    rate = ax.twinx()
    end = int(max((s.at_s for s in replay.sent), default=0)) + 1
    buckets = [0] * (end // 5 + 1)
    hosted = [0] * (end // 5 + 1)
    for s in replay.sent:
        buckets[int(s.at_s) // 5] += 1
        hosted[int(s.at_s) // 5] += s.backend == "hosted"
    xs = [i * 5 for i in range(len(buckets))]
    rate.plot(xs, [b / 5 for b in buckets], color="grey", label="offered req/s")
    rate.plot(xs, [h / 5 for h in hosted], color="tab:red", label="hosted req/s")
    rate.set_ylabel("requests per second")
    fig.legend(loc="upper left", bbox_to_anchor=(0.07, 0.9), fontsize=7)
    ax.set_title(
        "replicas follow the spike; hosted takes the surge while they warm up", fontsize=10
    )
    fig.tight_layout()
    made.append(out / "replicas.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    for backend, colour in (("local", "tab:blue"), ("hosted", "tab:red")):
        chosen = [s for s in replay.sent if s.backend == backend and s.ttft_s is not None]
        if chosen:
            when = [s.at_s for s in chosen]
            ttft = [float(s.ttft_s or 0.0) for s in chosen]
            ax.scatter(when, ttft, s=3, color=colour, label=backend)
    ax.axhline(ttft_target_s, color="black", linestyle="--", label="TTFT target")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("time to first token, s (client)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    made.append(out / "ttft.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)
    return made
