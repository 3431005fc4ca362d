"""Turn a `weir bench planner` output folder into a markdown report.

Keeps reports honest and reproducible: the table, the exact command, how
the workload was derived and the plots all come from summary.json.

    .venv/bin/python bench/write_report.py bench/reports/azure-conv-default "<command>"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = (
    ("$/M useful", "dollars_per_million_useful_tokens", "{:.3f}"),
    ("useful fraction", "useful_token_fraction", "{:.4f}"),
    ("total $", "total_dollars", "{:.2f}"),
    ("GPU $", "gpu_dollars", "{:.2f}"),
    ("hosted $", "hosted_dollars", "{:.2f}"),
    ("hosted requests", "hosted_request_share", "{:.1%}"),
    ("useful tokens", "useful_tokens", "{:,.0f}"),
    ("wasted tokens", "wasted_tokens", "{:,.0f}"),
    ("TTFT p95 s", "ttft_p95_s", "{:.2f}"),
    ("ITL p95 ms", "itl_p95_s", "{:.0f}"),
)


def _cell(fmt: str, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return fmt.format(number * 1000 if key == "itl_p95_s" else number)


def render(folder: Path, command: str) -> str:
    summary = json.loads((folder / "summary.json").read_text())
    work, scenario, cmp = summary["workload"], summary["scenario"], summary["comparison"]
    lines = [
        f"# `weir bench planner`: {scenario['name']} scenario on {Path(work['source']).name}",
        "",
        "```",
        command,
        "```",
        "",
        "## Workload",
        "",
        f"- Source: `{work['source']}` ({work['source_requests']:,} requests over "
        f"{work['source_duration_s']:.0f} s).",
        f"- Derivation: {work['derivation']}.",
        f"- Result: {work['requests']:,} requests over {work['duration_s']:.0f} s "
        f"({work['mean_rate_rps']} req/s on average); {work['local_request_share']:.1%} of "
        "requests have prompts a replica can answer within the TTFT target, the rest must go "
        f"hosted or be late; one replica takes {work['replica_rate_at_slo_rps']} req/s at the SLO.",
        "- Every policy runs the same requests with the same seed after a 900 s preroll (a copy "
        "of the trace's opening) that is not accounted, so each starts in its own steady state.",
        "",
        "## Results",
        "",
        "| policy | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, values in summary["policies"].items():
        cells = [_cell(fmt, key, values[key]) for _, key, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Against the targets", ""]
    target = cmp["useful_token_target"]
    lines.append(
        f"- weir's useful-token fraction: {cmp['weir_useful_token_fraction']:.4f} "
        f"(target {target})."
    )
    if "weir_vs_cheapest_baseline" in cmp:
        lines.append(
            f"- weir / cheapest baseline reaching {target} "
            f"(`{cmp['cheapest_baseline_reaching_target']}`): "
            f"{cmp['weir_vs_cheapest_baseline']:.3f}."
        )
    if "weir_vs_oracle" in cmp:
        lines.append(
            f"- weir / oracle: {cmp['weir_vs_oracle']:.3f} (oracle useful fraction "
            f"{cmp['oracle_useful_token_fraction']:.4f})."
        )
    if "planner_ms_per_decision_mean" in cmp:
        lines.append(
            f"- Planner: {cmp['planner_ms_per_decision_mean']:.2f} ms per decision on average, "
            f"p99 {cmp['planner_ms_per_decision_p99']:.2f} ms, over {cmp['planner_decisions']} "
            "decisions (wall time on the 2-core development machine)."
        )
    sims = ", ".join(f"{k} {v} s" for k, v in cmp.get("sim_seconds", {}).items())
    lines += [f"- Simulation wall time: {sims}.", "", "## Plots", ""]
    for png, title in (
        ("replicas.png", "Replicas per pool (ready + warming)"),
        ("hosted_share.png", "Hosted share of requests"),
        ("ttft_p95.png", "TTFT p95 over time"),
        ("cost_vs_useful.png", "Cumulative spend against useful tokens"),
    ):
        lines += [f"![{title}]({png})", ""]
    return "\n".join(lines)


def main() -> None:
    folder = Path(sys.argv[1])
    command = sys.argv[2] if len(sys.argv) > 2 else "(command not recorded)"
    (folder / "README.md").write_text(render(folder, command) + "\n")
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
