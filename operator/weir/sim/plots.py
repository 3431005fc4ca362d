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
from matplotlib.figure import Figure

from weir.sim.recorder import RunResult


def write_plots(
    results: Mapping[str, RunResult], ttft_target_s: float, out: Path, context: str = ""
) -> list[Path]:
    """Write the four PNGs into `out`; returns their paths.

    `context` (trace, scenario, scaling, engine speed, seed) is printed under
    every title, so a plot copied out of its folder still says what it shows.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _replicas(results, out / "replicas.png", context),
        _series(
            results,
            "hosted_share",
            "hosted share of requests (last 60 s)",
            out / "hosted_share.png",
            None,
            context,
        ),
        _series(
            results,
            "ttft_p95_s",
            "TTFT p95 (last 60 s), s",
            out / "ttft_p95.png",
            ttft_target_s,
            context,
        ),
        _cumulative(results, out / "cost_vs_useful.png", context),
    ]
    return paths


def _caption(fig: Figure, context: str) -> None:
    if context:
        fig.text(0.01, 0.005, context, fontsize=6, ha="left", va="bottom", wrap=True)


def _replicas(results: Mapping[str, RunResult], path: Path, context: str) -> Path:
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
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _caption(fig, context)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _series(
    results: Mapping[str, RunResult],
    attr: str,
    label: str,
    path: Path,
    target: float | None,
    context: str,
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
    ax.set_title(label)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _caption(fig, context)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cumulative(results: Mapping[str, RunResult], path: Path, context: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, result in results.items():
        s = result.series
        ax.plot([u / 1e6 for u in s.useful_tokens], s.dollars, label=name)
    ax.set_xlabel("cumulative useful tokens, millions")
    ax.set_ylabel("cumulative spend, $")
    ax.set_title("Spend against useful tokens (slope = $ per useful token)")
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _caption(fig, context)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
