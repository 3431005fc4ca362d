"""Sweep every peer family's knobs on the tuning workloads; freeze the winners.

    .venv/bin/python bench/tune_peers.py [--workers 2] [--out bench/peers/tuned.yaml]

Tuning workloads (the reports' generated workloads use other seeds, so they
are held out): the first 15 minutes of the shared Azure conversation trace
with the default scenario, scaled as the full trace is at
--target-peak-replicas 8, seed 0 (the reports' Azure runs replay the whole
trace: the first 15 minutes are in-sample for the peers, the rest is not),
and a generated 10-minute bursty workload (seed 900, busiest minute 4
replicas), each after a 300 s preroll. The sweep is cut to that size because the
development machine's two cores are shared. Grids: weir.sim.tuning.sweep_grid.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from weir.sim.bench import make_policies, run_policies
from weir.sim.generate import generate
from weir.sim.peers import PeerSetting
from weir.sim.runner import RunConfig
from weir.sim.scenario import load_scenario, load_scenario_profiles
from weir.sim.traces import Request, load_trace
from weir.sim.tuning import Trial, sweep_grid, tune, write_tuned
from weir.sim.workload import derive

ROOT = Path(__file__).resolve().parents[1]
AZURE = ROOT.parent / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
SCENARIO = ROOT / "bench" / "scenarios" / "default.yaml"
AZURE_TUNING_S = 900.0
PREROLL_S = 300.0  # shorter than the reports' 900 s: the sweep's time goes on the accounted part
WORKLOADS = (
    ("azure-conv", None, 8.0, 0),
    ("bursty", 900, 4.0, 900),
)
_STATE: dict[str, Any] = {}


def _workloads() -> list[tuple[str, list[Request]]]:
    sc = _STATE["scenario"]
    prof = _STATE["profiles"]
    out = []
    for name, gen_seed, peak, seed in WORKLOADS:
        if gen_seed is None:
            whole = load_trace(_STATE["azure"], None)
            scaled = derive(whole, sc, prof, seed, peak, None, name).description["rate_factor"]
            factor = float(scaled)  # type: ignore[arg-type]
            opening = [r for r in whole if r.arrival_s < AZURE_TUNING_S]
            out.append((name, derive(opening, sc, prof, seed, None, factor, name).trace))
            continue
        source = generate(name, 600.0, 3.0, gen_seed)  # type: ignore[arg-type]
        out.append((name, derive(source, sc, prof, seed, peak, None, name).trace))
    return out


def _init(azure: Path) -> None:
    _STATE["azure"] = azure
    sc = load_scenario(SCENARIO)
    _STATE["scenario"] = sc
    _STATE["profiles"] = load_scenario_profiles(sc, ROOT / "engines" / "profiles")
    _STATE["workloads"] = _workloads()


def _evaluate(setting: PeerSetting) -> tuple[PeerSetting, tuple[float, ...], tuple[float, ...]]:
    sc, prof = _STATE["scenario"], _STATE["profiles"]
    dollars, useful = [], []
    for (_, trace), (_, _, _, seed) in zip(_STATE["workloads"], WORKLOADS, strict=True):
        config = RunConfig(seed=seed, preroll_s=PREROLL_S)
        policies = make_policies(["peer"], trace, sc, prof, config, {"peer": setting})
        result = run_policies(policies, trace, sc, prof, config).results["peer"]
        dollars.append(result.cost.dollars_per_million_useful_tokens)
        useful.append(result.cost.useful_token_fraction)
    return setting, tuple(dollars), tuple(useful)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "peers" / "tuned.yaml")
    parser.add_argument("--azure", type=Path, default=AZURE, help="The Azure conversation trace.")
    args = parser.parse_args()
    console = Console(width=140)
    grid = sweep_grid()
    settings = [s for family in grid.values() for s in family]
    target = load_scenario(SCENARIO).deployment.slo.useful_token_target
    results: dict[PeerSetting, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    start = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with (
        multiprocessing.Pool(args.workers, initializer=_init, initargs=(args.azure,)) as pool,
        Progress(*columns, console=console) as progress,
    ):
        task = progress.add_task("sweeping peer settings", total=len(settings))
        for setting, dollars, useful in pool.imap_unordered(_evaluate, settings):
            results[setting] = (dollars, useful)
            progress.console.print(
                f"  {setting.family} {setting.knobs()}: $/M {[round(d, 3) for d in dollars]}, "
                f"useful {[round(u, 4) for u in useful]}"
            )
            progress.advance(task)

    def lookup(setting: PeerSetting) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return results[setting]

    def shown(trial: Trial) -> None:
        return None

    families = tune(grid, lookup, target, shown)
    how = {
        "command": "python bench/tune_peers.py",
        "scenario": "bench/scenarios/default.yaml",
        "workloads": [
            {"name": n, "generated_seed": g, "target_peak_replicas": p, "seed": s}
            for n, g, p, s in WORKLOADS
        ],
        "azure_tuning_seconds": AZURE_TUNING_S,
        "rule": "lowest geometric-mean $/M useful among settings meeting the useful-token "
        "target on every tuning workload (else the most useful)",
        "settings_tried": len(settings),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_tuned(args.out, families, how)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
