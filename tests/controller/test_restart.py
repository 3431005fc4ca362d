"""The operator killed at any point converges after a restart: nothing duplicated or orphaned.

In its own module so that no other operator process runs beside the one killed.
"""

from __future__ import annotations

from support.operator import create, delete_and_wait, deployment, get_deployment, operator_process
from weir_lab.cluster.wait import wait_for


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
        try:
            expected = {
                "deployments": sorted(
                    [f"llm-{namespace}-od", f"llm-{namespace}-spot", "llm-router"]
                ),
                "services": sorted(["llm", f"llm-{namespace}-od", f"llm-{namespace}-spot"]),
            }

            def children() -> dict[str, list[str]]:
                apps, core = cluster.apps, cluster.core
                return {
                    "deployments": sorted(
                        d.metadata.name for d in apps.list_namespaced_deployment(namespace).items
                    ),
                    "services": sorted(
                        s.metadata.name for s in core.list_namespaced_service(namespace).items
                    ),
                }

            # children are applied concurrently: wait for the whole set, then check it is
            # exactly the set (a duplicate or an orphan would make it differ for good)
            wait_for(lambda: children() == expected, "exactly the expected children", 60)
            owner = get_deployment(cluster.api, namespace, "llm")["metadata"]["uid"]
            for d in cluster.apps.list_namespaced_deployment(namespace).items:
                assert [r.uid for r in d.metadata.owner_references] == [owner]
        finally:
            delete_and_wait(cluster, namespace)  # while an operator runs to release its finalizer
