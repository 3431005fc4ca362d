"""Turn a `weir bench planner` output folder into a markdown report.

Keeps reports honest and reproducible: the table, the exact command, how
the workload was derived, the tuned peers, the bound and the plots all come
from summary.json; where weir loses, the report says so in its first lines.

    .venv/bin/python bench/write_report.py bench/reports/azure-conv-default "<command>"
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def _num(value: object, fmt: str) -> str:
    number = float(value)  # type: ignore[arg-type]
    return fmt.format(number) if math.isfinite(number) else "inf"


def _ci(entry: dict[str, Any], key: str, fmt: str) -> str:
    ci = entry["ci95"][key]
    if not math.isfinite(float(ci["mean"])):
        return "inf"
    return f"{_num(ci['mean'], fmt)} [{_num(ci['lo'], fmt)}, {_num(ci['hi'], fmt)}]"


def verdict(cmp: dict[str, Any]) -> str:
    """One sentence: does weir win, lose or tie against the best peer."""
    if "best_peer" not in cmp:
        return "No peer reaches the useful-token target on this workload."
    lo, hi = cmp["weir_vs_best_peer_ci95"]
    ratio = cmp["weir_vs_best_peer"]
    peer = cmp["best_peer"]
    if not cmp.get("weir_meets_target", False):
        return (
            f"**weir misses the useful-token target** ({cmp['weir_useful_token_fraction']:.4f}); "
            f"the best peer reaching it is `{peer}` (weir at {ratio:.3f}x its $/M)."
        )
    if lo > 1:
        return f"**weir loses** to `{peer}`: {ratio:.3f}x its $/M (95% interval {lo:.3f}-{hi:.3f})."
    if hi < 1:
        return f"weir wins against `{peer}`: {ratio:.3f}x its $/M (95% interval {lo:.3f}-{hi:.3f})."
    return f"weir and `{peer}` are not apart: {ratio:.3f}x (95% interval {lo:.3f}-{hi:.3f})."


def _header(summary: dict[str, Any], command: str) -> list[str]:
    work, scenario, cmp = summary["workload"], summary["scenario"], summary["comparison"]
    bound = summary["lower_bound"]
    return [
        f"# `weir bench planner`: {scenario['name']} scenario on {Path(work['source']).name}",
        "",
        verdict(cmp),
        f"weir / lower bound: {cmp['weir_vs_lower_bound']:.3f} "
        f"(95% interval {cmp['weir_vs_lower_bound_ci95'][0]:.3f}-"
        f"{cmp['weir_vs_lower_bound_ci95'][1]:.3f}); the bound is "
        f"${summary['lower_bound_dollars_per_million_useful_tokens']:.3f}/M useful "
        f"(the SLO-rate fluid figure, not a bound, is "
        f"${bound['slo_rate_relaxation_dollars_per_million_useful_tokens']:.3f}/M).",
        "",
        "```",
        command,
        "```",
        "",
        "## Workload",
        "",
        f"- Source: `{work['source']}` ({work['source_requests']:,} requests over "
        f"{work['source_duration_s']:.0f} s).",
        f"- Derivation (seed {summary['seeds'][0]}): {work['derivation']}; "
        f"{work['requests']:,} requests over {work['duration_s']:.0f} s.",
        f"- Seeds {summary['seeds']} (each seed re-draws the copies' jitter, the spot "
        "interruptions and the hosted latencies); engine speed "
        f"{summary['engine_speed']:g}x the profile (the policies read the profile).",
        "- Every policy runs the same requests with the same seed after a 900 s preroll that "
        "is not accounted.",
        "",
    ]


def _table(summary: dict[str, Any]) -> list[str]:
    cmp = summary["comparison"]
    lines = [
        "## Results (mean over seeds, [95% interval])",
        "",
        "| policy | seeds | $/M useful | useful fraction | hosted requests | GPU $ | hosted $ "
        "| TTFT p95 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(
        summary["policies"].items(),
        key=lambda kv: float(kv[1]["dollars_per_million_useful_tokens"]),
    )
    for name, entry in ordered:
        label = f"**{name}**" if name in ("weir", cmp.get("best_peer")) else name
        lines.append(
            f"| {label} | {entry['ci95']['useful_token_fraction']['n']} | "
            f"{_ci(entry, 'dollars_per_million_useful_tokens', '{:.3f}')} | "
            f"{_ci(entry, 'useful_token_fraction', '{:.4f}')} | "
            f"{entry['hosted_request_share']:.1%} | {entry['gpu_dollars']:.2f} | "
            f"{entry['hosted_dollars']:.2f} | {entry['ttft_p95_s']:.2f} |"
        )
    ci = summary["lower_bound"]["ci95"]
    lines.append(
        f"| lower bound (fluid relaxation) | {ci['n']} | {ci['mean']:.3f} "
        f"[{ci['lo']:.3f}, {ci['hi']:.3f}] | | | | | |"
    )
    return lines


def _peers(summary: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Tuned peers (settings frozen in bench/peers/tuned.yaml)",
        "",
        "| peer | fallback | target | window s | other | meets target |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, entry in summary.get("peers", {}).items():
        s = entry["setting"]
        other = []
        if s["kind"] == "spothedge":
            other.append(f"num_overprovision {s['overprovision']}")
        if s.get("long_prompt_tokens") is not None:
            other.append(f"prompts > {s['long_prompt_tokens']:.0f} tokens hosted")
        if s["placement"] == "mixed":
            other.append(f"on-demand floor {s['floor']}")
        lines.append(
            f"| {name} | {'yes' if s['fallback'] else 'no'} | {s['target']} | {s['window_s']:.0f} "
            f"| {', '.join(other)} | {'yes' if entry['meets_target'] else 'no'} |"
        )
    return lines


def render(folder: Path, command: str) -> str:
    summary = json.loads((folder / "summary.json").read_text())
    cmp = summary["comparison"]
    lines = _header(summary, command) + _table(summary) + _peers(summary)
    lines += ["", "## Comparison", ""]
    lines += [f"- `{k}`: {v}" for k, v in cmp.items() if k != "sim_seconds"]
    lines.append(
        f"- The bound holds for every policy and seed: "
        f"{summary['lower_bound']['holds_for_every_policy_and_seed']}."
    )
    lines += ["", "## Plots (seed " + str(summary["seeds"][0]) + ")", ""]
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
