"""`weir demo --out DIR`: the whole story on the local cluster, end to end.

Cluster up (real control plane, GPU pools, pod network, pod supervisor),
weir's image built and loaded into the real node, `helm upgrade --install`
of charts/weir (the operator as the chart's Deployment on that node, router
pods there too; `weir_lab.cluster.release`), a hosted API stand-in on the
host end of the pods' veth, and the example
InferenceDeployment (`examples/llama-3.3-70b.yaml`) applied with times
compressed (cold start and control period of seconds, so the demo fits in
minutes). Then a real production trace is replayed through the router pod,
with a launch spike (x5 within 30 s), while the terminal shows what weir
reports live. At the end: a table, plots and DIR/summary.json, with $ per
useful token from Prometheus' raw counters, and the same schedule priced by
the simulator all hosted and with a static fleet sized for the peak.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.profile import load_profiles
from weir.sim.traces import load_trace
from weir_lab.closedloop import figures, report
from weir_lab.closedloop.harness import (
    HOSTED_KEY,
    METRICS_WINDOW_S,
    Loop,
    Shape,
    install_crds,
)
from weir_lab.closedloop.hosted import HostedStandIn
from weir_lab.closedloop.progress import Sampler, table
from weir_lab.closedloop.schedule import Shaping, Spike, warp
from weir_lab.closedloop.traffic import replay
from weir_lab.cluster import controlplane, kube, release
from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

_console = Console()
OPERATOR_TARGET = "operator.json"
_TIMES = Shape()  # the scenarios' compressed times (example: 300 s cold start, 15 s period)


def _kubectl(settings: ClusterSettings, *args: str) -> str:
    return release.against_cluster(settings, "kubectl", *args)


def _install(settings: ClusterSettings, api: Any) -> release.Release:
    """weir as users install it: its image on the real node, `helm upgrade --install` of
    the chart, with the operator pods' /metrics scraped (the GPU side of $ per useful
    token is their gauge)."""
    installed = release.install(
        settings,
        api,
        _say,
        metricsWindowSeconds=METRICS_WINDOW_S,
        metricsRefreshSeconds=1,
    )
    target = settings.prometheus_targets_dir / OPERATOR_TARGET
    aside = target.with_suffix(".tmp")
    aside.write_text(json.dumps(release.operator_targets(installed.operator_ips)))
    aside.replace(target)  # Prometheus must never read a half-written list
    return installed


def compressed(example: Path, hosted_url: str) -> list[dict[str, Any]]:
    """The example's documents with demo times, the stand-in's URL and its key."""
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CapacityPool":
            spec["coldStartSeconds"] = _TIMES.cold_start_s
        elif doc["kind"] == "HostedEndpoint":
            spec["baseUrl"] = f"{hosted_url}/v1"
        elif doc["kind"] == "Secret":
            doc["stringData"] = {k: HOSTED_KEY for k in doc.get("stringData", {"api-key": ""})}
        elif doc["kind"] == "InferenceDeployment":
            spec["control"] = {
                **spec.get("control", {}),
                "periodSeconds": _TIMES.period_s,
                "staleAfterSeconds": max(15.0, 4 * _TIMES.period_s),
            }
    return docs


def _hosted_model(example: Path) -> str:
    """The model the example's HostedEndpoint asks for, which the stand-in then serves."""
    docs = yaml.safe_load_all(example.read_text())
    doc = next(d for d in docs if d and d["kind"] == "HostedEndpoint")
    return HostedEndpointSpec.model_validate(doc["spec"]).model


def _say(line: str) -> None:
    _console.print(line, highlight=False)


def _default_trace(settings: ClusterSettings) -> Path:
    return (
        settings.e2e_dir.parent.parent
        / "shared"
        / "data"
        / "traces"
        / ("AzureLLMInferenceTrace_conv.csv")
    )


def _baselines(
    docs: list[dict[str, Any]], schedule: list[Any], settings: ClusterSettings, window_s: float
) -> dict[str, dict[str, float]]:
    from weir.planner.profiles import match_profiles

    pools = {
        d["metadata"]["name"]: CapacityPoolSpec.model_validate(d["spec"])
        for d in docs
        if d["kind"] == "CapacityPool"
    }
    hosted = next(
        HostedEndpointSpec.model_validate(d["spec"]) for d in docs if d["kind"] == "HostedEndpoint"
    )
    deployment = next(
        InferenceDeploymentSpec.model_validate(d["spec"])
        for d in docs
        if d["kind"] == "InferenceDeployment"
    )
    directory = settings.e2e_dir.parent / "engines" / "profiles"
    available = load_profiles(directory)
    matched = match_profiles(deployment, pools, available)
    first = next(iter(matched.values()))
    stem = next(k for k, v in available.items() if v is first)
    scenario = report.scenario_of(
        pools, hosted, deployment, stem, settings.scrape_interval_s, window_s
    )
    profiles = {name: first for name in pools}
    return report.baselines(schedule, scenario, profiles)


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Folder for summary.json and the plots.",
)
@click.option(
    "--example",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Example to apply (default: examples/llama-3.3-70b.yaml).",
)
@click.option(
    "--trace",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Request trace (default: the shared Azure conversation trace).",
)
@click.option("--base-rps", default=3.0, show_default=True, help="Rate before the spike.")
@click.option("--duration", default=240.0, show_default=True, help="Seconds of traffic.")
@click.option("--spike-at", default=40.0, show_default=True, help="Spike start, seconds in.")
def demo(
    out: Path,
    example: Path | None,
    trace: Path | None,
    base_rps: float,
    duration: float,
    spike_at: float,
) -> None:
    """Cluster, operator, example deployment, traffic with a launch spike, summary."""
    settings = ClusterSettings()
    example = example or settings.e2e_dir.parent / "examples" / "llama-3.3-70b.yaml"
    trace = trace or _default_trace(settings)
    started = time.monotonic()
    try:
        _run(settings, out, example, trace, base_rps, duration, spike_at)
    except (ClusterError, WaitTimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        _clean_up(settings, out / "applied.yaml")
    _console.print(f"demo done in {time.monotonic() - started:.0f} s; results in {out}")
    _console.print(
        "The demo removed its deployment and uninstalled the chart. Left running: the local "
        "cluster with its real node (`weir cluster status`); `make cluster-down` (or `weir "
        "cluster down`) stops it."
    )


def _clean_up(settings: ClusterSettings, applied: Path) -> None:
    """Remove what the demo applied, then uninstall the chart, whatever the outcome.

    In this order: the operator holds a finalizer on the InferenceDeployment, so
    it must see the deletion through; left running, it would act on whatever lands
    on the cluster next (a benchmark's deployments, someone's tests).
    """
    if applied.exists() and controlplane.api_ready(settings):
        try:
            _kubectl(settings, "delete", "--ignore-not-found", "--wait=false", "-f", str(applied))
            docs = [d for d in yaml.safe_load_all(applied.read_text()) if d]
            idep = next(d for d in docs if d["kind"] == "InferenceDeployment")
            namespace = idep["metadata"].get("namespace", "default")
            name = idep["metadata"]["name"]
            wait_for(
                lambda: (
                    not _kubectl(
                        settings,
                        "get",
                        "inferencedeployment",
                        name,
                        "-n",
                        namespace,
                        "--ignore-not-found",
                        "-o",
                        "name",
                    ).strip()
                ),
                f"the demo's InferenceDeployment {namespace}/{name} to be deleted",
                120,
            )
        except (ClusterError, WaitTimeoutError, StopIteration) as exc:
            _say(f"could not remove the demo's deployment ({exc}); `weir cluster down` will")
    try:
        if controlplane.api_ready(settings):
            with kube.api_client(settings) as api:
                release.uninstall(settings, api)
    except ClusterError as exc:
        _say(f"could not uninstall the chart ({exc}); `weir cluster down` stops everything")
    (settings.prometheus_targets_dir / OPERATOR_TARGET).unlink(missing_ok=True)


def _run(
    settings: ClusterSettings,
    out: Path,
    example: Path,
    trace: Path,
    base_rps: float,
    duration: float,
    spike_at: float,
) -> None:
    controlplane.up(settings, _say)
    with kube.api_client(settings) as api:
        install_crds(api)
        installed = _install(settings, api)
        _say(
            f"operator running as the chart's Deployment on the real node, from {installed.image} "
            f"(logs: kubectl logs -n {release.NAMESPACE} deploy/{release.RELEASE})"
        )
        with HostedStandIn(
            settings.host_address, model=_hosted_model(example), api_key=HOSTED_KEY
        ) as hosted:
            _say(f"hosted API stand-in at {hosted.url} (0.4 s TTFT, 20 ms ITL, list prices)")
            docs = compressed(example, hosted.url)
            out.mkdir(parents=True, exist_ok=True)
            applied = out / "applied.yaml"
            applied.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            _say(_kubectl(settings, "apply", "-f", str(applied)).strip())
            idep = next(d for d in docs if d["kind"] == "InferenceDeployment")
            loop = Loop(
                settings,
                api,
                idep["metadata"].get("namespace", "default"),
                idep["metadata"]["name"],
            )
            url = loop.wait_router(180)
            wait_for(lambda: loop.ready_engines() >= 1, "the first engine replica", 120)
            _say(f"router pod at {url}; traffic starts")
            schedule = warp(load_trace(trace), Shaping(base_rps, duration, Spike(spike_at)))
            _traffic(settings, out, loop, url, schedule, docs, trace)


def _traffic(
    settings: ClusterSettings,
    out: Path,
    loop: Loop,
    url: str,
    schedule: list[Any],
    docs: list[dict[str, Any]],
    trace: Path,
) -> None:
    model = next(d for d in docs if d["kind"] == "InferenceDeployment")["spec"]
    sampler = Sampler(loop, time.monotonic()).start()
    with Live(console=_console, refresh_per_second=2) as live:
        result = asyncio.run(
            replay(
                url,
                schedule,
                model=model["model"]["name"],
                on_tick=lambda now, r: live.update(table(now, r, sampler, schedule[-1].arrival_s)),
                api_key=loop.client_token(),
            )
        )
    sampler.stop()
    end_wall = loop.wait_scraped(time.time())  # counters as of after the last token
    measured = figures.measure(
        loop.prom, loop.namespace, loop.name, result.started_unix_s, end_wall
    )
    _console.print("pricing the same schedule in the simulator (all hosted, static for the peak)")
    simulated = _baselines(docs, schedule, settings, METRICS_WINDOW_S)
    target = float(model["slo"].get("usefulTokenTarget", 0.99))
    data = report.summary(measured, result, sampler, simulated, target)
    data["trace"] = trace.name
    path = report.write(out, data)
    report.plots(out, result, sampler.samples, float(model["slo"]["ttftSeconds"]))
    _show(data)
    _console.print(f"summary: {path}")
    click.echo(_kubectl(settings, "get", "inferencedeployments", "-o", "wide"))


def _show(data: dict[str, Any]) -> None:
    grid = Table(title="$ per useful token: weir on the cluster vs the same traffic simulated")
    for column in ("policy", "$/M useful tokens", "useful fraction", "hosted share"):
        grid.add_column(column)
    grid.add_row(
        "weir (measured)",
        f"{data['dollars_per_million_useful_tokens']:.3f}",
        f"{data['useful_token_fraction']:.4f}",
        f"{data['hosted_share']:.1%}",
    )
    for name, row in data["baselines"].items():
        grid.add_row(
            f"{name} (simulated)",
            f"{row['dollars_per_million_useful_tokens']:.3f}",
            f"{row['useful_token_fraction']:.4f}",
            f"{row['hosted_request_share']:.1%}",
        )
    _console.print(grid)
    spend = ", ".join(f"{k} ${v:.3f}" for k, v in data["spend_dollars"].items())
    _console.print(
        f"failed requests {data['failed_requests']} of {data['requests']}; "
        f"max spill reaction {data['max_spill_reaction_s']:.2f} s; spend {spend}"
    )
