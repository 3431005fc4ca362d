"""The pod supervisor: the kubelet's part for pods on simulated nodes.

KWOK gives a pod a phase and an address; this loop gives it a process. Every
pass (level-based, `pod_loop_s` apart) it lists the pods on KWOK's nodes and
converges: a Running pod with an address gets its stand-in (see `standins`)
started inside the pods' network namespace once its cold start is over; the
stand-in's readiness probe sets the pod's Ready condition, as a kubelet's
would, so EndpointSlices follow the process and not the schedule; a stand-in
that exits is restarted; a terminating pod's stand-in is drained (engines
finish their open requests, routers shut down gracefully) within its grace
period, then the pod is deleted; a pod that vanished (its node deleted) has
its process killed. Prometheus finds the pods itself (Kubernetes discovery
with the chart's relabelling), so scraping is none of this loop's business.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.profile import load_profiles
from weir_lab.cluster import podnet, standins
from weir_lab.cluster.pki import Pki
from weir_lab.cluster.pools import KWOK_ANNOTATION
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.standins import StandIn

log = logging.getLogger("weir.supervisor")
_PROFILES = Path(__file__).resolve().parents[3] / "engines" / "profiles"
_MIN_DRAIN_S = 2.0  # endpoints take a moment to tell the router a pod is terminating
_MOUNT_SYNC_S = 2.0
_RETRY_S = 5.0  # a pod whose stand-in cannot be built yet is tried again this often


class StandInError(Exception):
    """This pod cannot be stood in for (yet); the message says why."""


@dataclass
class Tracked:
    """One pod and its stand-in process."""

    uid: str
    namespace: str
    name: str
    ip: str
    standin: StandIn
    start_at: float
    proc: subprocess.Popen[bytes] | None = None
    ready: bool | None = None
    restarts: int = 0
    draining_since: float | None = None
    terminated: bool = False
    last_probe: float = 0.0
    last_sync: float = 0.0
    synced: dict[Path, bytes] = field(default_factory=dict)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deadline(pod: dict[str, Any]) -> float:
    """Wall-clock time at which the grace period of a terminating pod ends."""
    stamp = pod["metadata"]["deletionTimestamp"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)  # a reader never sees half a file


class Supervisor:
    """Converges the processes on this machine to the pods on simulated nodes."""

    def __init__(self, settings: ClusterSettings, api: client.ApiClient) -> None:
        self.settings = settings
        # the client's models are loosely typed; plain dicts are read from raw answers
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.dir = settings.state_dir / "pods"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tracked: dict[str, Tracked] = {}
        self.http = httpx.Client(timeout=0.5)
        self.prefix = podnet.exec_prefix(settings)
        # read once: new pods only look them up (the text is what the engine stand-in loads)
        self.profiles = load_profiles(_PROFILES)
        self.profile_texts = {s: (_PROFILES / f"{s}.yaml").read_text() for s in self.profiles}

    # -- the loop ----------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except (ApiException, httpx.HTTPError, OSError) as exc:
                log.warning("supervisor pass failed (retrying): %s", exc)
            except Exception:
                # Broad on purpose: the supervisor is every pod's kubelet, so a bug in one pass
                # must not end it; the traceback is logged and the next pass retries.
                log.exception("supervisor pass failed unexpectedly (retrying)")
            (self.dir / "heartbeat").touch()
            stop.wait(max(0.0, self.settings.pod_loop_s - (time.monotonic() - started)))
        self.shutdown()

    def step(self) -> None:
        pods = self._pods()
        for uid in list(self.tracked):
            if uid not in pods:
                self._forget(self.tracked.pop(uid), "pod is gone")
        for uid, pod in pods.items():
            try:
                tracked = self.tracked.get(uid)
                if tracked is None:
                    tracked = self.tracked[uid] = self._track(pod)
                self._converge(tracked, pod)
            except (ApiException, httpx.HTTPError, OSError) as exc:
                # one pod's trouble (a failed patch, a refused probe) must not starve the others
                meta = pod["metadata"]
                log.warning("pod %s/%s: %s (retrying)", meta["namespace"], meta["name"], exc)

    def shutdown(self) -> None:
        for tracked in self.tracked.values():
            self._kill(tracked)
        self.http.close()

    # -- reading the cluster ----------------------------------------------

    def _pods(self) -> dict[str, dict[str, Any]]:
        """Pods bound to KWOK's nodes that have an address, by uid."""
        nodes = json.loads(self.core.list_node(_preload_content=False).data)
        simulated = {
            n["metadata"]["name"]
            for n in nodes["items"]
            if (n["metadata"].get("annotations") or {}).get(KWOK_ANNOTATION) == "fake"
        }
        listed = json.loads(self.core.list_pod_for_all_namespaces(_preload_content=False).data)
        return {
            p["metadata"]["uid"]: p
            for p in listed["items"]
            if p.get("spec", {}).get("nodeName") in simulated and p.get("status", {}).get("podIP")
        }

    def _engine_context(self, pod: dict[str, Any]) -> tuple[str, str, float]:
        """The profile text, model name and cold start for an engine pod, from the
        InferenceDeployment and CapacityPool it belongs to (what the operator plans with)."""
        from weir.planner.profiles import match_profiles
        from weir.planner.types import PlanningError

        labels = pod["metadata"].get("labels") or {}
        owner, pool = labels.get("weir.dev/deployment"), labels.get("weir.dev/pool")
        if not owner or not pool:
            raise StandInError("engine pod without weir.dev/deployment and weir.dev/pool labels")
        ns = pod["metadata"]["namespace"]
        try:
            body = self.custom.get_namespaced_custom_object(
                "weir.dev", "v1alpha1", ns, "inferencedeployments", owner
            )
            spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
            bodies = {
                b.pool: self.custom.get_cluster_custom_object(
                    "weir.dev", "v1alpha1", "capacitypools", b.pool
                )
                for b in spec.pools
            }
            pools = {
                name: CapacityPoolSpec.model_validate(body.get("spec") or {})
                for name, body in bodies.items()
            }
        except ApiException as exc:
            raise StandInError(f"cannot read {ns}/{owner} or its pools: {exc.reason}") from exc
        except ValidationError as exc:
            raise StandInError(f"{ns}/{owner} or one of its pools is invalid: {exc}") from exc
        if pool not in pools:
            raise StandInError(f"pool {pool} is no longer in {ns}/{owner}'s spec")
        try:
            matched = match_profiles(spec, pools, self.profiles)[pool]
        except PlanningError as exc:
            raise StandInError(str(exc)) from exc
        stem = next(k for k, v in self.profiles.items() if v is matched)
        text = standins.at_speed(self.profile_texts[stem], standins.engine_speed(bodies[pool]))
        cold = min(pools[pool].cold_start_seconds, self.settings.max_cold_start_s)
        return text, spec.model.name, cold

    def _track(self, pod: dict[str, Any]) -> Tracked:
        meta, ip = pod["metadata"], pod["status"]["podIP"]
        pod_dir = self.dir / f"{meta['namespace']}_{meta['name']}"
        kind = standins.pod_kind(pod)
        try:
            if kind == "engine":
                text, model, cold = self._engine_context(pod)
                standin = standins.engine_standin(
                    pod,
                    ip=ip,
                    exec_prefix=self.prefix,
                    pod_dir=pod_dir,
                    profile_text=text,
                    model=model,
                    cold_start_s=cold,
                    backend=self.settings.engine_backend,
                )
            elif kind == "router":
                standin = standins.router_standin(
                    pod, ip=ip, exec_prefix=self.prefix, pod_dir=pod_dir
                )
            else:
                standin = StandIn("other")
        except StandInError as exc:
            # tracked all the same: it stays not ready, is retried, and is deleted on time
            log.warning("pod %s/%s: %s (retrying)", meta["namespace"], meta["name"], exc)
            standin = StandIn("unrunnable", delay_s=_RETRY_S)
        log.info("pod %s/%s (%s) at %s", meta["namespace"], meta["name"], kind, ip)
        return Tracked(
            meta["uid"],
            meta["namespace"],
            meta["name"],
            ip,
            standin,
            start_at=time.monotonic() + standin.delay_s,
        )

    # -- converging one pod -------------------------------------------------

    def _converge(self, t: Tracked, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(t, pod)
            return
        if t.standin.kind == "other":
            self._set_ready(t, True, "NoStandIn")
            return
        if t.standin.kind == "unrunnable":
            self._set_ready(t, False, "NoStandIn")
            if time.monotonic() >= t.start_at:  # an unrunnable pod's start_at is its next try
                self.tracked[t.uid] = self._track(pod)
            return
        now = time.monotonic()
        if t.proc is not None and t.proc.poll() is not None:
            log.warning(
                "pod %s/%s: stand-in exited with %s", t.namespace, t.name, t.proc.returncode
            )
            t.proc, t.restarts = None, t.restarts + 1
            t.start_at = now + min(30.0, 2.0**t.restarts)
            self._set_ready(t, False, "StandInExited")
        if t.proc is None and now >= t.start_at and self._prepare(t):
            self._spawn(t)
        if t.proc is not None and now - t.last_sync >= _MOUNT_SYNC_S:
            self._sync_mounts(t)
        if t.proc is not None and now - t.last_probe >= 1.0:
            t.last_probe = now
            self._set_ready(t, self._probe(t), "Probe")

    def _probe(self, t: Tracked) -> bool:
        probe = t.standin.probe
        if probe is None:
            return True
        try:
            return self.http.get(f"http://{t.ip}:{probe.port}{probe.path}").status_code == 200
        except httpx.HTTPError:
            return False

    def _prepare(self, t: Tracked) -> bool:
        """Files, mounts and credentials before the first start; False: not yet."""
        pod_dir = self.dir / f"{t.namespace}_{t.name}"
        for relative, text in t.standin.files.items():
            _write(pod_dir / relative, text.encode())
        if not self._sync_mounts(t):
            return False
        if t.standin.kind == "router" and not (pod_dir / "kubeconfig").exists():
            _write(pod_dir / "kubeconfig", self._kubeconfig(t).encode(), 0o600)
        return True

    def _spawn(self, t: Tracked) -> None:
        pod_dir = self.dir / f"{t.namespace}_{t.name}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        with (pod_dir / "stand-in.log").open("ab") as out:
            t.proc = subprocess.Popen(
                list(t.standin.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        log.info("pod %s/%s: started pid %d", t.namespace, t.name, t.proc.pid)

    def _kubeconfig(self, t: Tracked) -> str:
        """A kubeconfig with a token of the pod's ServiceAccount, bound to the pod."""
        request = {
            "spec": {
                "expirationSeconds": 86400,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": t.name, "uid": t.uid},
            }
        }
        account = t.standin.service_account or "default"
        answer = self.core.create_namespaced_service_account_token(account, t.namespace, request)
        ca = Pki.at(self.settings.state_dir / "pki").ca_cert.read_bytes()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.settings.apiserver_url,
                        "certificate-authority-data": base64.b64encode(ca).decode(),
                    },
                }
            ],
            "users": [{"name": account, "user": {"token": answer.status.token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "local", "user": account}}],
            "current-context": "pod",
        }
        return yaml.safe_dump(config)

    def _sync_mounts(self, t: Tracked) -> bool:
        """Copy the pod's ConfigMap and Secret volumes (the kubelet refreshes them too)."""
        t.last_sync = time.monotonic()
        for mount in t.standin.mounts:
            try:
                if mount.source == "configMap":
                    data = {
                        k: v.encode()
                        for k, v in (
                            self.core.read_namespaced_config_map(mount.name, t.namespace).data or {}
                        ).items()
                    }
                else:
                    secret = self.core.read_namespaced_secret(mount.name, t.namespace)
                    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
            except ApiException as exc:
                if exc.status == 404:
                    log.info(
                        "pod %s/%s waits for %s %s", t.namespace, t.name, mount.source, mount.name
                    )
                    return False
                raise
            items = mount.items or tuple((k, k) for k in data)
            for key, relative in items:
                if key not in data:
                    continue
                path = mount.target / relative
                if t.synced.get(path) != data[key]:
                    _write(path, data[key], 0o600 if mount.source == "secret" else 0o644)
                    t.synced[path] = data[key]
        return True

    def _set_ready(self, t: Tracked, ready: bool, reason: str) -> None:
        if t.ready == ready:
            return
        state = "True" if ready else "False"
        stamp = _now_iso()
        conditions = [
            {"type": kind, "status": state, "reason": reason, "lastTransitionTime": stamp}
            for kind in ("Ready", "ContainersReady")
        ]
        body = {"status": {"conditions": conditions}}
        try:
            self.core.patch_namespaced_pod_status(t.name, t.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
        t.ready = ready
        log.info("pod %s/%s: Ready=%s (%s)", t.namespace, t.name, state, reason)

    # -- termination ------------------------------------------------------

    def _terminate(self, t: Tracked, pod: dict[str, Any]) -> None:
        now = time.monotonic()
        if t.draining_since is None:
            t.draining_since = now
            log.info("pod %s/%s: terminating, draining", t.namespace, t.name)
            self._set_ready(t, False, "Terminating")
            if t.standin.kind == "router" and t.proc is not None:
                t.proc.send_signal(signal.SIGTERM)
        running = t.proc is not None and t.proc.poll() is None
        overdue = time.time() >= _deadline(pod)
        draining = now - t.draining_since < _MIN_DRAIN_S or not self._idle(t)
        if running and not overdue and draining:
            return
        self._kill(t)
        try:
            self.core.delete_namespaced_pod(t.name, t.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _idle(self, t: Tracked) -> bool:
        """Whether the stand-in has nothing in flight (engines: running + waiting is 0)."""
        url = t.standin.drain_metrics
        if t.standin.kind != "engine" or url is None:
            return t.proc is None or t.proc.poll() is not None
        try:
            text = self.http.get(url).text
        except httpx.HTTPError:
            return True  # an engine that no longer answers has nothing left to drain
        busy = 0.0
        for family in text_string_to_metric_families(text):
            if family.name in ("trtllm_num_requests_running", "trtllm_num_requests_waiting"):
                busy += sum(s.value for s in family.samples)
        return busy == 0

    def _kill(self, t: Tracked) -> None:
        proc = t.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _forget(self, t: Tracked, why: str) -> None:
        log.info("pod %s/%s: %s; stopping its stand-in", t.namespace, t.name, why)
        self._kill(t)
        shutil.rmtree(self.dir / f"{t.namespace}_{t.name}", ignore_errors=True)
