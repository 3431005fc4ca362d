"""`weir bench planner` and `weir whatif`: the simulator, for people.

Thin on purpose: load the trace and scenario, derive the workload, run the
policies (weir.sim.bench), then print a table and write summary.json and
plots. Everything measured lives in the library so tests call the same code.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from weir.api import SpecError
from weir.api.profile import ProfileError
from weir.sim.bench import POLICY_NAMES, make_policies, run_policies
from weir.sim.formats import FORMATS, TraceFormat, load_any, parse_columns
from weir.sim.peers import PeerSetting
from weir.sim.readers import TIME_UNITS, TimeUnit
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig
from weir.sim.scenario import Scenario, load_scenario, load_scenario_profiles
from weir.sim.traces import TraceError, load_trace
from weir.sim.trials import SeedRun, Setup, run_seed, screen, summarise
from weir.sim.tuning import load_tuned
from weir.sim.user_resources import whatif_scenario
from weir.sim.whatif import OPTIONS, StaticMix, assumption_lines, assumptions, classify, decide
from weir.sim.workload import DerivedWorkload, derive, minute_need

_console = Console(width=150)
_NO_PLOTS = (
    "{what} writes plots with matplotlib, which this installation lacks "
    "(weir's image leaves it out): pip install 'weir[plots]'"
)


def _need_matplotlib(what: str) -> None:
    """The plotting modules are imported where used, after this: matplotlib is an extra
    (`weir[plots]`), so the operator and the router, which never plot, do not carry it."""
    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(_NO_PLOTS.format(what=what))


_F = TypeVar("_F", bound=Callable[..., Any])


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
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option(
    "--seeds", type=click.IntRange(1, 50), default=5, show_default=True, help="Seeds to run."
)
@click.option(
    "--preroll-s",
    type=click.FloatRange(0, 7200),
    default=900.0,
    show_default=True,
    help="Unaccounted replay of the trace's opening before it, s.",
)
@click.option(
    "--keep",
    type=click.IntRange(1, 100),
    default=100,
    show_default=True,
    help="Peers kept after the first seed (the cheapest reaching the target there).",
)
@click.option(
    "--engine-speed",
    type=click.FloatRange(0.05, 20.0),
    default=1.0,
    show_default=True,
    help="The simulated engine runs at X times its profile's speed; policies read the profile.",
)
@click.option(
    "--peers",
    "peers_file",
    type=click.Path(path_type=Path),
    default=Path("bench/peers/tuned.yaml"),
    show_default=True,
    help="Tuned peer settings (written by bench/tune_peers.py).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for summary.json and plots.",
)
@click.option(
    "--policies",
    default="",
    help="Comma-separated subset (default: weir, the oracle, all_hosted and every tuned peer).",
)
def bench_planner(
    trace: Path,
    fmt: str | None,
    scenario: Path,
    profiles: Path,
    target_peak_replicas: float,
    rate_scale: float | None,
    seed: int,
    seeds: int,
    preroll_s: float,
    keep: int,
    engine_speed: float,
    peers_file: Path,
    out: Path,
    policies: str,
) -> None:
    """Replay a trace through weir, its tuned peers and the bound; compare $ per useful token."""
    sc, prof, requests = _load_inputs(trace, fmt, scenario, profiles)
    peers = load_tuned(peers_file) if peers_file.exists() else {}
    if not peers:
        _console.print(f"[yellow]no tuned peers in {peers_file}; run bench/tune_peers.py[/]")
    names = [p for p in policies.split(",") if p] or [*POLICY_NAMES[:3], *peers]
    setup = Setup(
        requests,
        str(trace),
        sc,
        prof,
        engine_speed,
        names,
        peers,
        target_peak_replicas if rate_scale is None else None,
        rate_scale,
        preroll_s,
    )
    target = sc.deployment.slo.useful_token_target
    runs = _run_seeds(setup, list(range(seed, seed + seeds)), target, keep)
    summary = summarise(runs, target)
    first = runs[0]
    summary = {
        "workload": first.work.description,
        "engine_speed": engine_speed,
        "scenario": sc.model_dump(mode="json", by_alias=True),
        "peers": _peer_entries(summary["policies"], peers, target),
        **summary,
    }
    summary["comparison"]["sim_seconds"] = {
        n: round(s, 2) for n, s in first.run.sim_seconds.items()
    }
    _console.print(_seed_table(f"{sc.name} on {trace.name}", summary))
    _console.print(_comparison_text(summary))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    shown = _plotted(summary["comparison"], list(first.run.results))
    context = (
        f"trace {trace.name}; scenario {sc.name}; {first.work.description['derivation']}; "
        f"engine speed {engine_speed:g}x; seed {first.seed} of {len(runs)}"
    )
    plotted = {n: first.run.results[n] for n in shown}
    _need_matplotlib("weir bench planner")
    from weir.sim.plots import write_plots

    paths = write_plots(plotted, sc.deployment.slo.ttft_seconds, out, context)
    _console.print(f"wrote {out / 'summary.json'} and {', '.join(p.name for p in paths)}")


def _load_inputs(
    trace: Path, fmt: str | None, scenario: Path, profiles: Path
) -> tuple[Scenario, dict[str, Any], list[Any]]:
    try:
        sc = load_scenario(scenario)
        prof = load_scenario_profiles(sc, profiles)
        requests = load_trace(trace, fmt if fmt in ("azure", "mooncake") else None)  # type: ignore[arg-type]
    except (SpecError, ProfileError, TraceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    return sc, prof, list(requests)


def _run_seeds(setup: Setup, seeds: list[int], target: float, keep: int) -> list[SeedRun]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    runs: list[SeedRun] = []
    with Progress(*columns, console=_console, transient=True) as progress:
        task = progress.add_task(
            f"{len(seeds)} seeds x {len(setup.names)} policies", total=len(seeds) * len(setup.names)
        )
        for seed in seeds:

            def done(name: str, result: RunResult, seconds: float, seed: int = seed) -> None:
                s = result.summary()
                progress.console.print(
                    f"  seed {seed} {name}: {seconds:.1f} s, "
                    f"${s['dollars_per_million_useful_tokens']:.3f}/M, "
                    f"{s['useful_token_fraction']:.4f} useful"
                )
                progress.advance(task)

            names = screen(runs[0], setup.names, target, keep) if runs else None
            if names is not None:
                progress.update(task, total=len(setup.names) + (len(seeds) - 1) * len(names))
            try:
                runs.append(run_seed(setup, seed, done, names))
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
    return runs


def _peer_entries(
    policies: dict[str, Any], peers: dict[str, PeerSetting], target: float
) -> dict[str, Any]:
    return {
        name: {
            "setting": setting.knobs(),
            "dollars_per_million_useful_tokens": policies[name][
                "dollars_per_million_useful_tokens"
            ],
            "useful_token_fraction": policies[name]["useful_token_fraction"],
            "meets_target": policies[name]["useful_token_fraction"] >= target,
        }
        for name, setting in peers.items()
        if name in policies
    }


def _plotted(cmp: dict[str, Any], names: list[str]) -> list[str]:
    wanted = ["weir", str(cmp.get("best_peer", "")), "oracle_weir_rules", "all_hosted"]
    return [n for n in wanted if n in names]


def _ci(entry: dict[str, Any], key: str, fmt: str) -> str:
    ci = entry["ci95"][key]
    if not math.isfinite(ci["mean"]):
        return "inf"
    return f"{fmt.format(ci['mean'])} [{fmt.format(ci['lo'])}, {fmt.format(ci['hi'])}]"


def _seed_table(title: str, summary: dict[str, Any]) -> Table:
    cmp = summary["comparison"]
    table = Table(title=f"{title}: mean over {len(summary['seeds'])} seeds [95% interval]")
    for col in ("policy", "seeds", "$/M useful", "useful", "hosted req", "TTFT p95", "failed"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, entry in sorted(
        summary["policies"].items(), key=lambda kv: kv[1]["dollars_per_million_useful_tokens"]
    ):
        label = name
        if name == cmp.get("best_peer"):
            label += " (best peer)"
        table.add_row(
            label,
            str(entry["ci95"]["useful_token_fraction"]["n"]),
            _ci(entry, "dollars_per_million_useful_tokens", "{:.3f}"),
            _ci(entry, "useful_token_fraction", "{:.4f}"),
            f"{entry['hosted_request_share']:.1%}",
            f"{entry['ttft_p95_s']:.2f} s",
            f"{entry['failed_requests']:.0f}",
        )
    bound = summary["lower_bound"]["ci95"]
    table.add_row(
        "lower bound (fluid relaxation)",
        str(bound["n"]),
        f"{bound['mean']:.3f} [{bound['lo']:.3f}, {bound['hi']:.3f}]",
        "",
        "",
        "",
        "",
    )
    return table


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _comparison_text(summary: dict[str, Any]) -> str:
    cmp = summary["comparison"]
    parts = []
    if "weir_vs_best_peer" in cmp:
        lo, hi = cmp["weir_vs_best_peer_ci95"]
        verdict = "weir LOSES" if lo > 1 else ("weir wins" if hi < 1 else "no clear winner")
        parts.append(
            f"weir / best peer reaching target ({cmp['best_peer']}): "
            f"{cmp['weir_vs_best_peer']:.3f} [{lo:.3f}, {hi:.3f}] ({verdict})"
        )
    else:
        parts.append("no peer reaches the target")
    lo, hi = cmp["weir_vs_lower_bound_ci95"]
    parts.append(f"weir / lower bound: {cmp['weir_vs_lower_bound']:.3f} [{lo:.3f}, {hi:.3f}]")
    if "weir_vs_oracle_weir_rules" in cmp:
        parts.append(f"weir / oracle_weir_rules: {cmp['weir_vs_oracle_weir_rules']:.3f}")
    elif "oracle_weir_rules_meets_target" in cmp:
        parts.append("oracle_weir_rules misses the target (not reported as an oracle)")
    if not cmp.get("weir_meets_target", True):
        parts.append(f"weir MISSES the target ({cmp['weir_useful_token_fraction']:.4f} useful)")
    if "planner_ms_per_decision_mean" in cmp:
        parts.append(
            f"planner {cmp['planner_ms_per_decision_mean']:.2f} ms/decision "
            f"(p99 {cmp['planner_ms_per_decision_p99']:.2f})"
        )
    return "; ".join(parts)


def _path_opt(name: str, text: str, **kwargs: Any) -> Callable[[_F], _F]:
    return click.option(name, type=click.Path(path_type=Path), default=None, help=text, **kwargs)


@click.command("whatif")
@_path_opt(
    "--trace",
    "Trace: Azure or your own CSV, Mooncake JSON lines, OpenAI usage export, LiteLLM spend logs.",
    required=True,
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Trace format (default: detected)."
)
@click.option(
    "--columns",
    help="csv: which column holds what, e.g. timestamp=ts,input=prompt_tokens,"
    "output=completion_tokens (and model=COLUMN; default: common names).",
)
@click.option(
    "--time-unit",
    type=click.Choice(TIME_UNITS),
    default="auto",
    show_default=True,
    help="csv: unit of numeric timestamps (auto: s, ms, us or ns by magnitude; ISO 8601 always).",
)
@click.option("--model", help="Keep only this model's requests (formats that name a model).")
@_path_opt("--scenario", "Scenario file (default: the one shipped with weir).")
@_path_opt(
    "--resources",
    "Your CapacityPool, HostedEndpoint and InferenceDeployment YAML as the scenario (repeatable).",
    multiple=True,
)
@click.option("--deployment", help="With --resources: which InferenceDeployment.")
@_path_opt("--profiles", "Engine profiles folder (default: the ones shipped with weir).")
@click.option(
    "--target-peak-replicas",
    type=float,
    help="Scale so the busiest minute needs N on-demand replicas (default: the trace as is).",
)
@_rate_opt
@_seed_opt
@_path_opt("--out", "Folder for summary.json and plots.")
def whatif(
    trace: Path,
    fmt: TraceFormat | None,
    columns: str | None,
    time_unit: TimeUnit,
    model: str | None,
    scenario: Path | None,
    resources: tuple[Path, ...],
    deployment: str | None,
    profiles: Path | None,
    target_peak_replicas: float | None,
    rate_scale: float | None,
    seed: int,
    out: Path | None,
) -> None:
    """Where does this workload belong: hosted, dedicated GPUs, GPUs with spot, or weir's hybrid?"""
    if scenario is not None and resources:
        raise click.UsageError("--scenario and --resources are alternatives; give one")
    scale = (
        rate_scale if rate_scale is not None else (1.0 if target_peak_replicas is None else None)
    )
    try:
        mapping = parse_columns(columns) if columns else None
        loaded = load_any(trace, fmt, mapping, time_unit, model)
        setup = whatif_scenario(scenario, resources, deployment, profiles)
        sc, prof = setup.scenario, setup.profiles
        work = derive(loaded.requests, sc, prof, seed, target_peak_replicas, scale, str(trace))
    except (SpecError, ProfileError, TraceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    need = minute_need(work.trace, sc, prof)
    pattern = classify(work.trace, need, sc.prefix_cache_tokens)
    facts = assumptions(sc, prof, setup.source)
    lines = [*(f"- {n}" for n in (*loaded.notes, *setup.notes)), "Assumptions:"]
    lines += [f"  {line}" for line in assumption_lines(facts)]
    _console.print(loaded.headline(), *lines, sep="\n  ", markup=False)
    names = [n for n in OPTIONS if n != "all_hosted" or sc.hosted is not None]
    results, _ = _run(names, sc, prof, work, seed)
    _console.print(f"[bold]{trace.name}[/]: {work.description['derivation']}. {pattern.sentence()}")
    _console.print(_table(f"{sc.name}: what each option would cost", results, OPTIONS))
    decided = decide(
        {n: r.summary() for n, r in results.items()}, sc.deployment.slo.useful_token_target
    )
    _console.print(decided.text())
    if out is not None:
        _need_matplotlib("weir whatif --out")
        from weir.sim.whatif_report import summary_of, write_report

        summary = summary_of(loaded, work, setup, facts, pattern, results, decided)
        context = f"{loaded.format} trace; {work.description['derivation']}; seed {seed}"
        paths = write_report(out, summary, results, sc.deployment.slo.ttft_seconds, context)
        _console.print(f"wrote {', '.join(str(p) for p in paths)}", markup=False)
