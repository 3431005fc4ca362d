"""The operator killed at any point converges after a restart: nothing duplicated or orphaned.

In its own module so that no other operator process runs beside the one killed.
"""

from __future__ import annotations

from support.operator import create, delete_and_wait, deployment, get_deployment, operator_process
from weir.cluster.wait import wait_for


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    cluster, weir_crds, namespace, capacity_pools, tmp_path
):
    settings = cluster.settings
    with operator_process(settings, tmp_path / "first.log", "--standalone") as first:
        create(cluster, namespace, deployment(namespace))
        wait_for(
            lambda: cluster.apps.list_namespaced_deployment(namespace).items,
            "the first child",
            30,
            interval_s=0.05,
        )
        first.kill()  # SIGKILL, wherever it was in the apply sequence
        first.wait(timeout=10)
    with operator_process(settings, tmp_path / "second.log", "--standalone"):
        wait_for(
            lambda: len(cluster.apps.list_namespaced_deployment(namespace).items) == 3,
            "all three Deployments after the restart",
            60,
        )
        names = sorted(
            d.metadata.name for d in cluster.apps.list_namespaced_deployment(namespace).items
        )
        assert names == sorted([f"llm-{namespace}-od", f"llm-{namespace}-spot", "llm-router"])
        services = [s.metadata.name for s in cluster.core.list_namespaced_service(namespace).items]
        assert sorted(services) == sorted(["llm", f"llm-{namespace}-od", f"llm-{namespace}-spot"])
        owner = get_deployment(cluster.api, namespace, "llm")["metadata"]["uid"]
        for d in cluster.apps.list_namespaced_deployment(namespace).items:
            assert [r.uid for r in d.metadata.owner_references] == [owner]
        delete_and_wait(cluster, namespace)
