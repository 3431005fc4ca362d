"""`weir bench router`: the router against direct, nginx and LiteLLM, same machine, same load.

One fast stand-in upstream streams 64-token answers (back to back, or 10 ms
apart); a closed-loop load generator sends streaming requests at each
concurrency to each target: the upstream itself (direct), nginx (the
near-physical limit of a streaming proxy), weir's router, and LiteLLM's
proxy. Upstream and load generator share one core, the proxy under test
has the other; the proxy's CPU is sampled exactly over the measurement
window. Writes `DIR/summary.json` and prints a table plus the issue's
targets as ratios.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from weir.router.errors import ConfigError
from weir_lab.bench.router_targets import BENCH_TOKEN, Started, pinned, target, upstream

_BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 64,
    "stream": True,
}


def measure(
    name: str,
    proxy: Started | None,
    up: Started,
    concurrency: int,
    delay_ms: float,
    *,
    cpu: str,
    warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:
    """One run: load generator against one target at one setting."""
    port = proxy.port if proxy is not None else up.port
    args = {
        "host": "127.0.0.1",
        "port": port,
        "path": "/v1/chat/completions",
        "body": _BODY,
        "concurrency": concurrency,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "token": BENCH_TOKEN,
    }
    cmd = pinned(cpu, [sys.executable, "-m", "weir_lab.loadgen", json.dumps(args)])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    cpu0 = cpu1 = up0 = up1 = 0.0
    result: dict[str, Any] = {}
    for line in proc.stdout:
        if line.startswith("WINDOW START"):
            cpu0, up0 = proxy.cpu_s() if proxy is not None else 0.0, up.cpu_s()
        elif line.startswith("WINDOW END"):
            cpu1, up1 = proxy.cpu_s() if proxy is not None else 0.0, up.cpu_s()
        elif line.startswith("{"):
            result = json.loads(line)
    if proc.wait() != 0 or not result:
        raise ConfigError(f"the load generator failed against {name}")
    done = result["completed"]
    ttft = result["ttft_ms"]
    wall = warmup_s + duration_s
    return {
        "target": name,
        "concurrency": concurrency,
        "token_delay_ms": delay_ms,
        "requests_per_s": round(done / duration_s, 1),
        "ttft_p50_ms": _round(ttft["0.5"]),
        "ttft_p99_ms": _round(ttft["0.99"]),
        "added_ttft_p50_ms": None,
        "added_ttft_p99_ms": None,
        "proxy_cpu_ms_per_request": (
            round((cpu1 - cpu0) * 1000 / done, 3) if proxy is not None and done else None
        ),
        "rss_mb": round(proxy.rss_mb(), 1) if proxy is not None else None,
        "errors": result["errors"],
        "loadgen_cpu_fraction": round(result["cpu_s"] / wall, 3),
        "upstream_cpu_fraction": round((up1 - up0) / duration_s, 3),
        "error_samples": result["error_samples"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _added(runs: list[dict[str, Any]]) -> None:
    direct = {(r["concurrency"], r["token_delay_ms"]): r for r in runs if r["target"] == "direct"}
    for run in runs:
        base = direct.get((run["concurrency"], run["token_delay_ms"]))
        if base is None or run["target"] == "direct":
            continue
        for q in ("p50", "p99"):
            mine, ref = run[f"ttft_{q}_ms"], base[f"ttft_{q}_ms"]
            if mine is not None and ref is not None:
                run[f"added_ttft_{q}_ms"] = round(mine - ref, 2)


def checks(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, as measured ratios (None where a run is missing)."""

    def get(t: str, c: int, d: float) -> dict[str, Any] | None:
        found = [
            r for r in runs if (r["target"], r["concurrency"], r["token_delay_ms"]) == (t, c, d)
        ]
        return found[0] if found else None

    out: list[dict[str, Any]] = []
    w, d = get("weir", 200, 10.0), get("direct", 200, 10.0)
    if w and d and d["requests_per_s"]:
        out.append(
            {
                "check": "rps vs direct, 10 ms, c=200",
                "value": w["requests_per_s"] / d["requests_per_s"],
                "target": ">= 0.97",
            }
        )
        out.append(
            {
                "check": "added TTFT p50 ms, 10 ms, c=200",
                "value": w["added_ttft_p50_ms"],
                "target": "<= 1",
            }
        )
        out.append(
            {
                "check": "added TTFT p99 ms, 10 ms, c=200",
                "value": w["added_ttft_p99_ms"],
                "target": "<= 5",
            }
        )
        out.append({"check": "errors, 10 ms, c=200", "value": w["errors"], "target": "== 0"})
    for c in sorted({r["concurrency"] for r in runs}):
        w, n, lt = get("weir", c, 0.0), get("nginx", c, 0.0), get("litellm", c, 0.0)
        if w and n and n["proxy_cpu_ms_per_request"]:
            out.append(
                {
                    "check": f"CPU/request vs nginx, back to back, c={c}",
                    "value": w["proxy_cpu_ms_per_request"] / n["proxy_cpu_ms_per_request"],
                    "target": "<= 3",
                }
            )
        if w and lt and lt["requests_per_s"]:
            out.append(
                {
                    "check": f"rps vs LiteLLM, back to back, c={c}",
                    "value": w["requests_per_s"] / lt["requests_per_s"],
                    "target": ">= 20",
                }
            )
    rss = [r["rss_mb"] for r in runs if r["target"] == "weir" and r["rss_mb"] is not None]
    if rss:
        out.append({"check": "router RSS MB (max)", "value": max(rss), "target": "<= 150"})
    for item in out:
        if isinstance(item["value"], float):
            item["value"] = round(item["value"], 3)
    return out


def markdown(runs: list[dict[str, Any]], found: list[dict[str, Any]]) -> str:
    """The runs and checks as Markdown tables (for REPORT.md)."""
    cols = (
        "target",
        "concurrency",
        "token_delay_ms",
        "requests_per_s",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "added_ttft_p50_ms",
        "added_ttft_p99_ms",
        "proxy_cpu_ms_per_request",
        "rss_mb",
        "errors",
        "loadgen_cpu_fraction",
        "upstream_cpu_fraction",
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for run in runs:
        lines.append(
            "| " + " | ".join("-" if run.get(c) is None else str(run[c]) for c in cols) + " |"
        )
    lines += ["", "| check | measured | target |", "|---|---|---|"]
    lines += [f"| {c['check']} | {c['value']} | {c['target']} |" for c in found]
    return "\n".join(lines) + "\n"


def _table(runs: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
    console = Console(width=220)
    table = Table(title="weir bench router")
    cols = (
        "target",
        "concurrency",
        "token_delay_ms",
        "requests_per_s",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "added_ttft_p50_ms",
        "added_ttft_p99_ms",
        "proxy_cpu_ms_per_request",
        "rss_mb",
        "errors",
        "loadgen_cpu_fraction",
        "upstream_cpu_fraction",
    )
    for col in cols:
        table.add_column(col.replace("_", " "), justify="right")
    for run in runs:
        table.add_row(*("-" if run.get(c) is None else str(run[c]) for c in cols))
    console.print(table)
    for item in found:
        console.print(f"{item['check']}: {item['value']} (target {item['target']})")


@click.command("router")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--duration", default=10.0, show_default=True, help="Measured seconds per run.")
@click.option("--warmup", default=2.0, show_default=True, help="Unmeasured seconds first.")
@click.option("--concurrency", multiple=True, type=int, default=(50, 200), show_default=True)
@click.option("--delay-ms", multiple=True, type=float, default=(0.0, 10.0), show_default=True)
@click.option("--targets", default="direct,nginx,weir,litellm", show_default=True)
@click.option("--litellm", default=None, help="litellm executable (default: on PATH).")
@click.option("--nginx", default=None, help="nginx executable (default: on PATH).")
@click.option("--upstream-cpu", default="0", show_default=True, help="Core of upstream + load.")
@click.option("--proxy-cpu", default="1", show_default=True, help="Core of the proxy under test.")
def bench_router(
    out: Path,
    duration: float,
    warmup: float,
    concurrency: tuple[int, ...],
    delay_ms: tuple[float, ...],
    targets: str,
    litellm: str | None,
    nginx: str | None,
    upstream_cpu: str,
    proxy_cpu: str,
) -> None:
    """Streaming proxy throughput and added latency: direct, nginx, weir, LiteLLM."""
    out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="weir-bench-") as tmp:
        workdir = Path(tmp)
        for delay in delay_ms:
            with upstream(delay, upstream_cpu, workdir) as up:
                for name in [t.strip() for t in targets.split(",") if t.strip()]:
                    if name in skipped:
                        continue
                    try:
                        with target(name, up.port, proxy_cpu, workdir, litellm, nginx) as proxy:
                            for c in concurrency:
                                run = measure(
                                    name,
                                    proxy,
                                    up,
                                    c,
                                    delay,
                                    cpu=upstream_cpu,
                                    warmup_s=warmup,
                                    duration_s=duration,
                                )
                                runs.append(run)
                                click.echo(
                                    f"{name} c={c} {delay:g}ms: {run['requests_per_s']} req/s",
                                    err=True,
                                )
                    except ConfigError as exc:
                        skipped[name] = str(exc)
                        click.echo(f"{name}: skipped: {exc}", err=True)
    _added(runs)
    found = checks(runs)
    summary = {
        "runs": runs,
        "checks": found,
        "skipped": skipped,
        "median_loadgen_cpu_fraction": statistics.median(r["loadgen_cpu_fraction"] for r in runs)
        if runs
        else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(runs, found))
    _table(runs, found)
