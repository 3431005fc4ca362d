"""What runs in place of a pod on a simulated node, computed from the pod alone.

A simulated node runs no containers, so the pod supervisor starts a process
that does the container's job at the pod's address:

- an engine pod (weir's `trtllm-serve` container) gets `weir engine`: the
  emulated engine replaying the engine profile the operator plans with (same
  model, GPU family, precision, TP as the pod's InferenceDeployment and
  CapacityPool), or the torch reference engine on request. It answers only
  after the pool's `coldStartSeconds` (image pull, weights, warm-up);
- a router pod (weir's image, `router` arguments) gets `weir router` with the
  pod's own arguments; paths inside mounted ConfigMaps and Secrets point at
  the supervisor's copies of them, and it reaches the API server with a
  token of the pod's ServiceAccount;
- any other pod gets no process and is Ready at once (what KWOK does).

Nothing here talks to the cluster: the supervisor passes in what it read.
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Kind = Literal["engine", "router", "other", "unrunnable"]


@dataclass(frozen=True)
class Probe:
    """The readiness check the supervisor runs, as the kubelet would."""

    port: int
    path: str


@dataclass(frozen=True)
class Mount:
    """A ConfigMap or Secret volume the stand-in needs, copied to `target`."""

    source: Literal["configMap", "secret"]
    name: str
    items: tuple[tuple[str, str], ...]  # (key, relative path); empty: every key by name
    target: Path


@dataclass(frozen=True)
class StandIn:
    """How to run one pod: its command line, when it may start, how to tell it is ready."""

    kind: Kind
    argv: tuple[str, ...] = ()
    delay_s: float = 0.0
    probe: Probe | None = None
    mounts: tuple[Mount, ...] = ()
    service_account: str | None = None
    drain_metrics: str | None = None  # engines: URL of the metrics that say "in flight"
    files: dict[str, str] = field(default_factory=dict)  # relative path -> text to write first


def pod_kind(pod: dict[str, Any]) -> Literal["engine", "router", "other"]:
    containers = pod.get("spec", {}).get("containers") or []
    if not containers:
        return "other"
    first = containers[0]
    if (first.get("command") or [None])[0] == "trtllm-serve":
        return "engine"
    if (first.get("args") or [None])[0] == "router":
        return "router"
    return "other"


def _probe(container: dict[str, Any], default_port: int, default_path: str) -> Probe:
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    port = probe.get("port", default_port)
    if not isinstance(port, int):  # a named port
        port = next(
            (p["containerPort"] for p in container.get("ports", []) if p.get("name") == port),
            default_port,
        )
    return Probe(int(port), str(probe.get("path", default_path)))


def python(pod_dir: Path) -> list[str]:
    """`python -m weir`, with the pods' folder on the command line (as the bytecode cache
    prefix, shared by every stand-in) so `weir cluster down` finds a stand-in even if the
    supervisor died."""
    return [sys.executable, "-X", f"pycache_prefix={pod_dir.parent / 'pycache'}", "-m", "weir"]


def _seed(pod: dict[str, Any]) -> int:
    """Each pod draws its own latencies, the same ones every time it is run."""
    return zlib.crc32(pod["metadata"]["name"].encode()) & 0x7FFFFFFF


# A CapacityPool annotation of the lab's: its engines run this many times as fast as the
# profile the operator plans with (0.85: 15% slower), as real hardware, drivers or prompts
# make them. The operator never reads it; it has to learn the difference from the engines.
ENGINE_SPEED_ANNOTATION = "lab.weir.dev/engine-speed"


def engine_speed(pool: dict[str, Any]) -> float:
    """The pool's engine speed relative to its profile (1 unless the lab annotates it)."""
    text = ((pool.get("metadata") or {}).get("annotations") or {}).get(ENGINE_SPEED_ANNOTATION)
    try:
        speed = float(text) if text is not None else 1.0
    except ValueError:
        return 1.0
    return speed if 0.1 <= speed <= 10.0 else 1.0


def at_speed(profile_text: str, speed: float) -> str:
    """The profile of an engine `speed` times as fast: every latency / speed, throughput x speed."""
    if speed == 1.0:
        return profile_text
    profile = yaml.safe_load(profile_text)
    for point in profile.get("points") or []:
        for key in ("ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s"):
            if key in point:
                point[key] = point[key] / speed
        if "output_tokens_per_s" in point:
            point["output_tokens_per_s"] = point["output_tokens_per_s"] * speed
    profile["source"] = f"{profile.get('source', '')} (lab: engines at {speed}x this profile)"
    return str(yaml.safe_dump(profile, sort_keys=False))


def engine_standin(
    pod: dict[str, Any],
    *,
    ip: str,
    exec_prefix: list[str],
    pod_dir: Path,
    profile_text: str,
    model: str,
    cold_start_s: float,
    backend: str,
) -> StandIn:
    container = pod["spec"]["containers"][0]
    probe = _probe(container, 8000, "/health")
    argv = [
        *exec_prefix,
        *python(pod_dir),
        "engine",
        f"--backend={backend}",
        f"--host={ip}",
        f"--port={probe.port}",
        f"--model-name={model}",
        f"--seed={_seed(pod)}",
    ]
    if backend == "emulated":
        argv.append(f"--profile={pod_dir / 'profile.yaml'}")
    else:
        argv += ["--threads=1", "--max-batch=8"]
    annotations = pod["metadata"].get("annotations") or {}
    metrics = annotations.get("prometheus.io/path", "/prometheus/metrics")
    return StandIn(
        "engine",
        tuple(argv),
        delay_s=cold_start_s,
        probe=probe,
        drain_metrics=f"http://{ip}:{probe.port}{metrics}",
        files={"profile.yaml": profile_text},
    )


def _mounts(pod: dict[str, Any], container: dict[str, Any], pod_dir: Path) -> list[Mount]:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    found = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"], {})
        for source in ("configMap", "secret"):
            if source in volume:
                ref = volume[source]
                name = ref.get("name") or ref.get("secretName")
                items = tuple((i["key"], i["path"]) for i in ref.get("items") or [])
                target = pod_dir / "root" / mount["mountPath"].lstrip("/")
                found.append(Mount(source, str(name), items, target))
    return found


def router_standin(
    pod: dict[str, Any], *, ip: str, exec_prefix: list[str], pod_dir: Path
) -> StandIn:
    container = pod["spec"]["containers"][0]
    mounts = _mounts(pod, container, pod_dir)
    args = []
    for arg in container.get("args") or []:
        for mount in mounts:
            prefix = "/" + str(mount.target.relative_to(pod_dir / "root"))
            arg = arg.replace(f"={prefix}/", f"={mount.target}/")
        if arg.startswith("--host="):
            arg = f"--host={ip}"
        args.append(arg)
    argv = [
        *exec_prefix,
        *python(pod_dir),
        *args,
        f"--kubeconfig={pod_dir / 'kubeconfig'}",
    ]
    return StandIn(
        "router",
        tuple(argv),
        probe=_probe(container, 8080, "/readyz"),
        mounts=tuple(mounts),
        service_account=pod["spec"].get("serviceAccountName") or "default",
    )
