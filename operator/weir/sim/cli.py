"""`weir bench planner` and `weir whatif`: the simulator, for people.

Thin on purpose: load the trace and scenario, derive the workload, run the
policies (weir.sim.bench), then print a table and write summary.json and
plots. Everything measured lives in the library so tests call the same code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from weir.api import SpecError
from weir.api.profile import ProfileError
from weir.sim.bench import POLICY_NAMES, comparison, make_policies, run_policies
from weir.sim.plots import write_plots
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig
from weir.sim.scenario import Scenario, load_scenario, load_scenario_profiles
from weir.sim.traces import TraceError, load_trace
from weir.sim.whatif import OPTIONS, StaticMix, classify, verdict
from weir.sim.workload import DerivedWorkload, derive, minute_need

_console = Console(width=150)


def _load(
    trace: Path,
    fmt: str | None,
    scenario: Path,
    profiles: Path,
    seed: int,
    peak: float | None,
    rate: float | None,
) -> tuple[Scenario, dict[str, Any], DerivedWorkload]:
    try:
        sc = load_scenario(scenario)
        prof = load_scenario_profiles(sc, profiles)
        requests = load_trace(trace, fmt if fmt in ("azure", "mooncake") else None)  # type: ignore[arg-type]
        work = derive(requests, sc, prof, seed, peak, rate, str(trace))
    except (SpecError, ProfileError, TraceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    return sc, prof, work


def _table(
    title: str, results: dict[str, RunResult], labels: dict[str, str] | None = None
) -> Table:
    table = Table(title=title)
    for col in (
        "policy",
        "$/M useful",
        "useful",
        "total $",
        "GPU $",
        "hosted $",
        "hosted req",
        "TTFT p95",
        "ITL p95",
        "failed",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, result in results.items():
        s = result.summary()
        table.add_row(
            (labels or {}).get(name, name),
            _money(s["dollars_per_million_useful_tokens"]),
            f"{s['useful_token_fraction']:.4f}",
            f"{s['total_dollars']:.2f}",
            f"{s['gpu_dollars']:.2f}",
            f"{s['hosted_dollars']:.2f}",
            f"{s['hosted_request_share']:.1%}",
            f"{s['ttft_p95_s']:.2f} s",
            f"{s['itl_p95_s'] * 1000:.0f} ms",
            str(int(s["failed_requests"])),
        )
    return table


def _money(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "inf"


def _run(
    names: list[str], sc: Scenario, prof: dict[str, Any], work: DerivedWorkload, seed: int
) -> tuple[dict[str, RunResult], Any]:
    config = RunConfig(seed=seed)
    extra = [n for n in names if n == "static_mix"]
    policies = make_policies([n for n in names if n != "static_mix"], work.trace, sc, prof, config)
    if extra:
        policies.append(StaticMix(sc, minute_need(work.trace, sc, prof)))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_console, transient=True) as progress:
        task = progress.add_task(f"simulating {len(work.trace):,} requests", total=len(policies))

        def done(name: str, result: RunResult, seconds: float) -> None:
            progress.console.print(
                f"  {name}: {seconds:.1f} s, "
                f"${result.summary()['dollars_per_million_useful_tokens']:.3f}/M useful"
            )
            progress.advance(task)

        run = run_policies(policies, work.trace, sc, prof, config, done)
    return run.results, run


_trace_opt = click.option(
    "--trace",
    "trace",
    type=click.Path(path_type=Path),
    required=True,
    help="Trace file (Azure CSV or Mooncake JSON lines).",
)
_format_opt = click.option(
    "--format",
    "fmt",
    type=click.Choice(["azure", "mooncake"]),
    default=None,
    help="Trace format (default: detected).",
)
_scenario_opt = click.option(
    "--scenario",
    type=click.Path(path_type=Path),
    default=Path("bench/scenarios/default.yaml"),
    show_default=True,
)
_profiles_opt = click.option(
    "--profiles",
    type=click.Path(path_type=Path),
    default=Path("engines/profiles"),
    show_default=True,
    help="Engine profiles folder.",
)
_seed_opt = click.option("--seed", type=int, default=0, show_default=True)
_rate_opt = click.option(
    "--rate-scale",
    type=float,
    default=None,
    help="Multiply the arrival rate (overrides --target-peak-replicas).",
)


@click.command("planner")
@_trace_opt
@_format_opt
@_scenario_opt
@_profiles_opt
@click.option(
    "--target-peak-replicas",
    type=float,
    default=8.0,
    show_default=True,
    help="Scale so the busiest minute needs N on-demand replicas at the SLO.",
)
@_rate_opt
@_seed_opt
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for summary.json and plots.",
)
@click.option(
    "--policies", default=",".join(POLICY_NAMES), show_default=True, help="Comma-separated subset."
)
def bench_planner(
    trace: Path,
    fmt: str | None,
    scenario: Path,
    profiles: Path,
    target_peak_replicas: float,
    rate_scale: float | None,
    seed: int,
    out: Path,
    policies: str,
) -> None:
    """Replay a trace through weir and every baseline; compare $ per useful token."""
    sc, prof, work = _load(trace, fmt, scenario, profiles, seed, target_peak_replicas, rate_scale)
    _console.print(
        f"[bold]workload[/]: {work.description['derivation']}; {len(work.trace):,} requests "
        f"over {work.description['duration_s']} s"
    )
    results, run = _run([p for p in policies.split(",") if p], sc, prof, work, seed)
    target = sc.deployment.slo.useful_token_target
    _console.print(_table(f"{sc.name} on {trace.name}", results))
    cmp = comparison(run, target)
    cmp["sim_seconds"] = {n: round(s, 2) for n, s in run.sim_seconds.items()}
    _console.print(_comparison_text(cmp))
    summary = {
        "workload": work.description,
        "scenario": sc.model_dump(mode="json", by_alias=True),
        "policies": {n: r.summary() for n, r in results.items()},
        "comparison": cmp,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    paths = write_plots(results, sc.deployment.slo.ttft_seconds, out)
    _console.print(f"wrote {out / 'summary.json'} and {', '.join(p.name for p in paths)}")


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _comparison_text(cmp: dict[str, Any]) -> str:
    parts = []
    if "weir_vs_cheapest_baseline" in cmp:
        parts.append(
            "weir / cheapest baseline reaching target "
            f"({cmp['cheapest_baseline_reaching_target']}): {cmp['weir_vs_cheapest_baseline']:.3f}"
        )
    if "weir_vs_oracle" in cmp:
        parts.append(f"weir / oracle: {cmp['weir_vs_oracle']:.3f}")
    if "planner_ms_per_decision_mean" in cmp:
        parts.append(
            f"planner {cmp['planner_ms_per_decision_mean']:.2f} ms/decision "
            f"(p99 {cmp['planner_ms_per_decision_p99']:.2f})"
        )
    return "; ".join(parts)


@click.command("whatif")
@_trace_opt
@_format_opt
@_scenario_opt
@_profiles_opt
@click.option(
    "--target-peak-replicas",
    type=float,
    default=None,
    help="Scale so the busiest minute needs N on-demand replicas (default: the trace as is).",
)
@_rate_opt
@_seed_opt
def whatif(
    trace: Path,
    fmt: str | None,
    scenario: Path,
    profiles: Path,
    target_peak_replicas: float | None,
    rate_scale: float | None,
    seed: int,
) -> None:
    """Where does this workload belong: hosted, dedicated GPUs, GPUs with spot, or weir's hybrid?"""
    scale = (
        rate_scale if rate_scale is not None else (1.0 if target_peak_replicas is None else None)
    )
    sc, prof, work = _load(trace, fmt, scenario, profiles, seed, target_peak_replicas, scale)
    need = minute_need(work.trace, sc, prof)
    pattern = classify(work.trace, need, sc.prefix_cache_tokens)
    names = [n for n in OPTIONS if n != "all_hosted" or sc.hosted is not None]
    results, _ = _run(names, sc, prof, work, seed)
    f = pattern.features
    _console.print(
        f"[bold]{trace.name}[/]: {work.description['derivation']}. "
        f"It looks like [bold]{pattern.name}[/] "
        f"({pattern.why}): {f['mean_rate_rps']:.1f} req/s on average, minute-to-minute variation "
        f"{f['minute_rate_cv']:.0%}, peak {f['peak_to_mean']:.1f}x the mean, prompts of "
        f"{f['mean_input_tokens']:.0f} tokens ({f['prefix_reuse']:.0%} reusable) for answers of "
        f"{f['mean_output_tokens']:.0f}; its busiest minute needs "
        f"{f['peak_minute_replicas']:.1f} replicas."
    )
    _console.print(_table(f"{sc.name}: what each option would cost", results, OPTIONS))
    summaries = {n: r.summary() for n, r in results.items()}
    _console.print(verdict(summaries, sc.deployment.slo.useful_token_target))
