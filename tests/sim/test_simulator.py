"""The simulator: every policy runs, requests are conserved, runs are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weir.api import EngineProfile
from weir.sim.bench import POLICY_NAMES, comparison, make_policies, run_policies
from weir.sim.cli import bench_planner, whatif
from weir.sim.generate import generate
from weir.sim.peers import PeerSetting
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario
from weir.sim.traces import write_trace
from weir.sim.tuning import write_tuned
from weir.sim.workload import derive

SMALL = RunConfig(seed=1, preroll_s=300.0)


def _work(
    scenario: Scenario, profiles: dict[str, EngineProfile], pattern: str, seed: int = 1
) -> list:  # type: ignore[type-arg]
    trace = generate(pattern, 900.0, 3.0, seed)  # type: ignore[arg-type]
    return derive(trace, scenario, profiles, seed, 3, None, pattern).trace


def _conserved(result) -> bool:  # type: ignore[no-untyped-def]
    ended = result.useful_requests + result.late_requests + result.failed_requests
    return ended == result.requests


def test_every_policy_runs_and_conserves(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = _work(scenario, profiles, "bursty")
    policies = make_policies(POLICY_NAMES, trace, scenario, profiles, SMALL)
    run = run_policies(policies, trace, scenario, profiles, SMALL)
    assert set(run.results) == set(POLICY_NAMES)
    for name, result in run.results.items():
        assert _conserved(result), name
        assert result.cost.useful_tokens <= result.cost.demanded_tokens
        assert result.series.t_s, name
    assert run.results["all_hosted"].cost.hosted_dollars > 0
    assert sum(run.results["all_hosted"].cost.gpu_dollars_by_pool.values()) == 0
    assert run.results["weir"].cost.useful_token_fraction > 0.95
    cmp = comparison(run, 0.99, lower_bound=0.5)
    decisions, vs_bound = cmp["planner_decisions"], cmp["weir_vs_lower_bound"]
    assert "oracle_weir_rules_meets_target" in cmp
    assert isinstance(decisions, int) and decisions > 0
    assert isinstance(vs_bound, float) and vs_bound > 1.0
    if cmp["oracle_weir_rules_meets_target"]:
        assert "weir_vs_oracle_weir_rules" in cmp


def test_weir_leans_on_cheap_hosted(
    cheap_scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = _work(cheap_scenario, profiles, "steady")
    names = ("weir", "all_hosted")
    run = run_policies(
        make_policies(names, trace, cheap_scenario, profiles, SMALL),
        trace,
        cheap_scenario,
        profiles,
        SMALL,
    )
    weir = run.results["weir"].cost.dollars_per_million_useful_tokens
    hosted = run.results["all_hosted"].cost.dollars_per_million_useful_tokens
    assert weir <= hosted * 1.02


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    pattern=st.sampled_from(["steady", "bursty", "long_context", "agentic"]),
)
def test_deterministic_and_conserving(
    scenario: Scenario, profiles: dict[str, EngineProfile], seed: int, pattern: str
) -> None:
    trace = generate(pattern, 400.0, 2.0, seed)  # type: ignore[arg-type]
    config = RunConfig(seed=seed, preroll_s=120.0)
    runs = [
        simulate(
            trace,
            scenario,
            profiles,
            make_policies(["weir"], trace, scenario, profiles, config)[0],
            config,
        )
        for _ in range(2)
    ]
    assert runs[0].summary() == runs[1].summary()
    assert _conserved(runs[0])
    assert runs[0].requests == len(trace)


def test_spot_interruptions_waste_and_retry(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    risky = scenario.pools["spot"].model_copy(
        update={"interruptions_per_instance_month": 30.0, "interruption_notice_seconds": 5.0}
    )
    stormy = scenario.model_copy(update={"pools": {**scenario.pools, "spot": risky}})
    trace = _work(stormy, profiles, "steady")
    result = simulate(
        trace, stormy, profiles, make_policies(["weir"], trace, stormy, profiles, SMALL)[0], SMALL
    )
    assert _conserved(result)
    assert result.cost.useful_token_fraction > 0.9


def test_cli_bench_and_whatif_on_generated_traces(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    runner = CliRunner()
    for fmt, pattern in (("azure", "daily"), ("mooncake", "agentic")):
        path = tmp_path / f"trace.{fmt}"
        write_trace(generate(pattern, 600.0, 2.0, 5), path, fmt)  # type: ignore[arg-type]
        out = tmp_path / f"out-{fmt}"
        common = [
            "--trace",
            str(path),
            "--scenario",
            str(root / "bench/scenarios/default.yaml"),
            "--profiles",
            str(root / "engines/profiles"),
        ]
        peers = tmp_path / "tuned.yaml"
        write_tuned(peers, {"hpa_spot": {"setting": PeerSetting("hpa", fallback=True).knobs()}}, {})
        result = runner.invoke(
            bench_planner,
            [
                *common,
                *("--target-peak-replicas", "2", "--seeds", "2", "--peers", str(peers)),
                *("--engine-speed", "0.9", "--out", str(out)),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "lower bound" in result.output
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["policies"]) == {*POLICY_NAMES[:3], "hpa_spot"}
        assert summary["seeds"] == [0, 1] and summary["engine_speed"] == 0.9
        assert summary["lower_bound_dollars_per_million_useful_tokens"] > 0
        assert summary["peers"]["hpa_spot"]["setting"]["fallback"] is True
        assert {"weir_vs_lower_bound", "weir_useful_token_fraction"} <= set(summary["comparison"])
        if "best_peer" in summary["comparison"]:
            assert summary["comparison"]["weir_vs_best_peer"] > 0
        for values in summary["policies"].values():
            assert {
                "dollars_per_million_useful_tokens",
                "useful_token_fraction",
                "total_dollars",
                "useful_tokens",
                "wasted_tokens",
                "ttft_p95_s",
                "itl_p95_s",
            } <= set(values)
        assert "derivation" in summary["workload"] and "pools" in summary["scenario"]
        assert all(
            (out / name).is_file()
            for name in ("replicas.png", "hosted_share.png", "ttft_p95.png", "cost_vs_useful.png")
        )
        advice = runner.invoke(whatif, common)
        assert advice.exit_code == 0, advice.output
        assert "It looks like" in advice.output
        assert "Cheapest option" in advice.output or "No option" in advice.output


def test_cli_reports_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    result = CliRunner().invoke(bench_planner, ["--trace", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "expected header" in result.output or "scenario" in result.output
