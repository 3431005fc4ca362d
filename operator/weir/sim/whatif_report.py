"""What `weir whatif --out DIR` writes: summary.json and plots that say what they show.

A summary or a plot copied out of its folder must still say which trace
and which scenario it is about, and what it assumed: summary.json carries
the trace as read (format, notes), the workload's derivation, the
scenario's source and values, the assumptions, the pattern, every option's
numbers and the verdict; every plot names the trace and the scenario in its
title or caption. Non-finite numbers are written as strings ("inf"), so
the file is strict JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from weir.sim.formats import LoadedTrace
from weir.sim.plots import write_plots
from weir.sim.recorder import RunResult
from weir.sim.user_resources import WhatifScenario
from weir.sim.whatif import OPTIONS, Pattern, Verdict
from weir.sim.workload import DerivedWorkload


def summary_of(
    trace: LoadedTrace,
    work: DerivedWorkload,
    setup: WhatifScenario,
    facts: Mapping[str, object],
    pattern: Pattern,
    results: Mapping[str, RunResult],
    decided: Verdict,
) -> dict[str, Any]:
    """Everything a reader needs to check the answer, as one JSON-ready mapping."""
    return {
        "trace": trace.describe(),
        "workload": work.description,
        "scenario": {
            "name": setup.scenario.name,
            "source": setup.source,
            "notes": list(setup.notes),
            "spec": setup.scenario.model_dump(mode="json", by_alias=True),
        },
        "assumptions": dict(facts),
        "pattern": {"name": pattern.name, "why": pattern.why, "features": pattern.features},
        "options": {
            name: {
                "label": OPTIONS.get(name, name),
                **result.summary(),
                "meets_target": result.summary()["useful_token_fraction"] >= decided.target,
            }
            for name, result in results.items()
        },
        "verdict": decided.as_dict(),
    }


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def write_report(
    out: Path,
    summary: Mapping[str, Any],
    results: Mapping[str, RunResult],
    ttft_target_s: float,
    context: str,
) -> list[Path]:
    """summary.json, the options plot and the simulator's four plots, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    path.write_text(json.dumps(_strict(summary), indent=2, allow_nan=False) + "\n")
    trace = Path(summary["trace"]["file"]).name
    title = f"weir whatif: trace {trace}, scenario {summary['scenario']['name']}"
    options = _options_plot(summary, results, out / "options.png", title, context)
    return [path, options, *write_plots(results, ttft_target_s, out, f"{title}; {context}")]


def _options_plot(
    summary: Mapping[str, Any],
    results: Mapping[str, RunResult],
    path: Path,
    title: str,
    context: str,
) -> Path:
    """$ per useful token of each option beside cumulative spend against useful tokens."""
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12, 5))
    names = list(results)
    options = summary["options"]
    costs = [options[n]["dollars_per_million_useful_tokens"] for n in names]
    shown = [c if math.isfinite(c) else 0.0 for c in costs]
    colours = ["tab:blue" if options[n]["meets_target"] else "lightgrey" for n in names]
    bars.barh([OPTIONS.get(n, n) for n in names], shown, color=colours)
    for y, (name, cost) in enumerate(zip(names, costs, strict=True)):
        useful = options[name]["useful_token_fraction"]
        label = f"${cost:.2f}, {useful:.1%} useful" if math.isfinite(cost) else "no useful tokens"
        bars.text(shown[y], y, f" {label}", va="center", fontsize=8, parse_math=False)
    bars.set_xlim(0, 1.6 * max(shown, default=0.0) or 1.0)
    bars.set_xlabel("$ per million useful tokens (grey: misses the useful-token target)")
    bars.invert_yaxis()
    for name, result in results.items():
        s = result.series
        lines.plot([u / 1e6 for u in s.useful_tokens], s.dollars, label=OPTIONS.get(name, name))
    lines.set_xlabel("cumulative useful tokens, millions")
    lines.set_ylabel("cumulative spend, $")
    lines.legend(fontsize=7)
    fig.suptitle(title, fontsize=11, parse_math=False)
    fig.text(
        0.5,
        0.9,
        summary["verdict"]["text"],
        fontsize=8,
        ha="center",
        va="top",
        wrap=True,
        parse_math=False,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.8))
    fig.text(0.01, 0.005, context, fontsize=6, ha="left", va="bottom", wrap=True, parse_math=False)
    fig.savefig(path, dpi=110, metadata={"Title": title, "Description": summary["verdict"]["text"]})
    plt.close(fig)
    return path
