"""Which weir operators act on the local cluster: processes on this machine, chart Deployments.

Two operators on one cluster fight: each applies its own plan to the same
children, so a benchmark of one measures both. Lab commands that start an
operator ask here first, and refuse (naming what runs and how to stop it)
rather than measure a fight. The operator in the lab runs `--standalone`
(no kopf peering), so the processes themselves are the evidence; a chart
install shows up as a Deployment labelled as weir's operator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CHART_SELECTOR = "app.kubernetes.io/name=weir,app.kubernetes.io/component=operator"


@dataclass(frozen=True)
class RunningOperator:
    """One operator that would act on the cluster, and how to stop it."""

    what: str
    stop_with: str

    def __str__(self) -> str:
        return f"{self.what} (stop it with: {self.stop_with})"


def is_operator_command(argv: Sequence[str]) -> bool:
    """`weir operator run ...` however it was launched (script, `-m weir`, a venv path)."""
    words = [os.path.basename(a) for a in argv]
    for i, word in enumerate(words[:-2]):
        if word in ("weir", "weir.exe") and words[i + 1] == "operator" and words[i + 2] == "run":
            return True
    return False


def operator_processes(exclude: frozenset[int] = frozenset()) -> list[RunningOperator]:
    """weir operator processes on this machine, whichever cluster they were given."""
    found = []
    # psutil keeps the Process objects of earlier calls; a PID reused since then (pid_max
    # is 32768 here, and a long test session wraps it) would be read through the stale one
    # and skipped, so each call starts from the process table as it is now.
    psutil.process_iter.cache_clear()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if proc.info["pid"] in exclude or not is_operator_command(argv):
            continue
        found.append(
            RunningOperator(
                f"process {proc.info['pid']}: {' '.join(argv)[:160]}",
                f"`weir cluster down` or `kill {proc.info['pid']}`",
            )
        )
    return found


def chart_operators(api: client.ApiClient) -> list[RunningOperator]:
    """Operator Deployments installed by the chart, with at least one replica."""
    try:
        items: list[Any] = (
            client.AppsV1Api(api)
            .list_deployment_for_all_namespaces(label_selector=CHART_SELECTOR)
            .items
        )
    except ApiException:
        return []
    return [
        RunningOperator(
            f"Deployment {d.metadata.namespace}/{d.metadata.name}",
            f"`helm uninstall` it or scale it to 0 in {d.metadata.namespace}",
        )
        for d in items
        if (d.spec.replicas or 0) > 0
    ]


def other_operators(api: client.ApiClient | None) -> list[RunningOperator]:
    """Every operator that would act beside one we are about to start."""
    own = frozenset({os.getpid()})
    return operator_processes(own) + (chart_operators(api) if api is not None else [])
