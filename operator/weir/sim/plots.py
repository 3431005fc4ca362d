"""The benchmark's plots, as PNG files (matplotlib, Agg backend, no display).

Four views of the same runs: replicas per pool over time, hosted share,
TTFT p95 over time against the target, and cumulative dollars against
cumulative useful tokens (the slope is $ per useful token).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from weir.sim.recorder import RunResult


def write_plots(results: Mapping[str, RunResult], ttft_target_s: float, out: Path) -> list[Path]:
    """Write the four PNGs into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _replicas(results, out / "replicas.png"),
        _series(
            results,
            "hosted_share",
            "hosted share of requests (last 60 s)",
            out / "hosted_share.png",
        ),
        _series(
            results, "ttft_p95_s", "TTFT p95 (last 60 s), s", out / "ttft_p95.png", ttft_target_s
        ),
        _cumulative(results, out / "cost_vs_useful.png"),
    ]
    return paths


def _replicas(results: Mapping[str, RunResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, result in results.items():
        s = result.series
        minutes = [t / 60 for t in s.t_s]
        for pool in s.ready:
            counts = [a + b for a, b in zip(s.ready[pool], s.warming[pool], strict=True)]
            if any(counts):
                ax.step(minutes, counts, where="post", label=f"{name}: {pool}")
    ax.set_xlabel("trace time, min")
    ax.set_ylabel("replicas (ready + warming)")
    ax.set_title("Replicas per pool")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _series(
    results: Mapping[str, RunResult], attr: str, label: str, path: Path, target: float | None = None
) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, result in results.items():
        s = result.series
        ax.plot([t / 60 for t in s.t_s], getattr(s, attr), label=name, linewidth=1)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label="target")
        ax.set_yscale("log")
    ax.set_xlabel("trace time, min")
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cumulative(results: Mapping[str, RunResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, result in results.items():
        s = result.series
        ax.plot([u / 1e6 for u in s.useful_tokens], s.dollars, label=name)
    ax.set_xlabel("cumulative useful tokens, millions")
    ax.set_ylabel("cumulative spend, $")
    ax.set_title("Spend against useful tokens (slope = $ per useful token)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
