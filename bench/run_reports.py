"""Regenerate bench/reports/: every run's summary, plots and README, then the index table.

    .venv/bin/python bench/run_reports.py [--jobs 2] [--seeds 5] [--only NAME,...]

Runs `weir bench planner` on both shared traces and on generated workloads
(`bench/make_traces.py /tmp/weir-traces 1200`: 20 minutes each, seeds 100-104,
held out from the peer sweep; 900 s preroll like the shared traces), with the
tuned peers of bench/peers/tuned.yaml, then bench/write_report.py on each
folder and writes bench/reports/table.md (the table bench/reports/README.md
quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "traces"
GENERATED = Path("/tmp/weir-traces")
# Every run replays 900 s of its trace's opening, unaccounted, before the accounted part:
# weir starts from its minimum fleet and the reactive peers from the first minute's need,
# ready, so a preroll shorter than a cold start and a few control windows measured
# weir's warm-up from nothing, not its operation (300 s did: 1.76x on steady, 1.28x at 900).
_SHORT: list[str] = []
RUNS: tuple[tuple[str, Path, list[str]], ...] = (
    ("azure-conv-default", SHARED / "AzureLLMInferenceTrace_conv.csv", []),
    ("mooncake-default", SHARED / "mooncake_synthetic_trace.jsonl", []),
    (
        "azure-conv-cheap-hosted",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--scenario", "bench/scenarios/cheap-hosted.yaml"],
    ),
    (
        "mooncake-cheap-hosted",
        SHARED / "mooncake_synthetic_trace.jsonl",
        ["--scenario", "bench/scenarios/cheap-hosted.yaml"],
    ),
    (
        "azure-conv-stressed",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--scenario", "bench/scenarios/stressed.yaml"],
    ),
    ("steady-default", GENERATED / "steady.csv", _SHORT),
    ("bursty-default", GENERATED / "bursty.csv", _SHORT),
    ("daily-default", GENERATED / "daily.csv", _SHORT),
    ("long_context-default", GENERATED / "long_context.jsonl", _SHORT),
    ("agentic-default", GENERATED / "agentic.jsonl", _SHORT),
    (
        "azure-conv-engine-0.8",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--engine-speed", "0.8"],
    ),
    (
        "azure-conv-engine-0.9",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--engine-speed", "0.9"],
    ),
    (
        "azure-conv-engine-1.1",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--engine-speed", "1.1"],
    ),
    (
        "azure-conv-engine-1.2",
        SHARED / "AzureLLMInferenceTrace_conv.csv",
        ["--engine-speed", "1.2"],
    ),
)


def _one(name: str, trace: Path, extra: list[str], seeds: int, keep: int) -> str:
    out = ROOT / "bench" / "reports" / name
    shown_trace = os.path.relpath(trace, ROOT)  # as run from the root: no path of this machine
    args = ["--trace", shown_trace, "--seeds", str(seeds), "--keep", str(keep), *extra]
    args += ["--out", str(out)]
    shown = [".venv/bin/weir", "bench", "planner", *args]
    shown = [a.replace(str(ROOT) + "/", "").replace(str(ROOT.parent), "..") for a in shown]
    log = ROOT / "bench" / "reports" / f".{name}.log"
    with log.open("w") as handle:
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "weir"), "bench", "planner", *args],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "write_report.py"), str(out), " ".join(shown)],
        cwd=ROOT,
        check=True,
    )
    return name


def table(names: list[str]) -> str:
    """The index table over the runs' summaries.

    Beside the best peer reaching the target, the cheapest peer whatever its useful
    fraction: a peer a little under the target and cheaper than weir is shown, not hidden.
    """
    rows = [
        "| run | weir $/M [95%] | weir useful (worst seed) | best peer at target | its $/M "
        "| weir / it [95%] | cheapest peer (useful) | bound $/M | weir / bound |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for name in names:
        path = ROOT / "bench" / "reports" / name / "summary.json"
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        cmp, pol = s["comparison"], s["policies"]
        weir = pol["weir"]
        ci = weir["ci95"]["dollars_per_million_useful_tokens"]
        worst = min(weir["per_seed"]["useful_token_fraction"])
        peer = cmp.get("best_peer", "none")
        peer_cost = f"{pol[peer]['dollars_per_million_useful_tokens']:.3f}" if peer in pol else ""
        ratio = (
            f"{cmp['weir_vs_best_peer']:.3f} [{cmp['weir_vs_best_peer_ci95'][0]:.3f}, "
            f"{cmp['weir_vs_best_peer_ci95'][1]:.3f}]"
            if "weir_vs_best_peer" in cmp
            else ""
        )
        others = {n: p for n, p in pol.items() if n != "weir" and "oracle" not in n}
        cheap = min(others, key=lambda n: others[n]["dollars_per_million_useful_tokens"])
        c = others[cheap]
        rows.append(
            f"| [{name}]({name}/README.md) | {weir['dollars_per_million_useful_tokens']:.3f} "
            f"[{ci['lo']:.3f}, {ci['hi']:.3f}] | {weir['useful_token_fraction']:.4f} "
            f"({worst:.4f}) | {peer} | {peer_cost} | {ratio} | {cheap} "
            f"{c['dollars_per_million_useful_tokens']:.3f} ({c['useful_token_fraction']:.4f}) | "
            f"{s['lower_bound_dollars_per_million_useful_tokens']:.3f} | "
            f"{cmp['weir_vs_lower_bound']:.3f} |"
        )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--keep", type=int, default=3, help="Peers kept after the first seed.")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    wanted = [n for n in args.only.split(",") if n]
    runs = [r for r in RUNS if not wanted or r[0] in wanted]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_one, n, t, e, args.seeds, args.keep) for n, t, e in runs]
        for future in futures:
            print(f"done {future.result()}", flush=True)
    (ROOT / "bench" / "reports" / "table.md").write_text(table([r[0] for r in RUNS]))
    print((ROOT / "bench" / "reports" / "table.md").read_text())


if __name__ == "__main__":
    main()
