"""Two operator replicas: one acts, and the other takes over when it dies."""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.operator import create, delete_and_wait, deployment, operator_process
from weir_lab.cluster.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
FAST = {"WEIR_OPERATOR_PEERING_LIFETIME_S": "10"}


def install_peering_crds(cluster) -> None:
    ext = client.ApiextensionsV1Api(cluster.api)
    for body in yaml.safe_load_all((REPO / "crds" / "kopf.dev_peerings.yaml").read_text()):
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition("clusterkopfpeerings.kopf.dev")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established, "kopf peering CRDs", 30)


def peers(cluster, name: str) -> dict:
    try:
        body = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return {}  # the first replica has not created it yet
        raise
    return {k: v for k, v in (body.get("status") or {}).items() if v}


def engines(cluster, namespace: str, owner: str) -> int:
    return len(
        cluster.apps.list_namespaced_deployment(
            namespace, label_selector=f"weir.dev/deployment={owner},weir.dev/component=engine"
        ).items
    )


def test_only_the_leader_acts_and_the_follower_takes_over(
    cluster, namespace, capacity_pools, tmp_path
):
    install_peering_crds(cluster)
    peering = f"weir-{namespace}"
    settings = cluster.settings
    low_log, high_log = tmp_path / "low.log", tmp_path / "high.log"
    with operator_process(settings, low_log, f"--peering={peering}", "--priority=10", env=FAST):
        with operator_process(
            settings, high_log, f"--peering={peering}", "--priority=20", env=FAST
        ):
            wait_for(
                lambda: len(peers(cluster, peering)) == 2,
                "both replicas to announce themselves",
                60,
                interval_s=0.5,
            )
            create(cluster, namespace, deployment(namespace, "first"))
            wait_for(
                lambda: engines(cluster, namespace, "first") == 2,
                "the leader to create children",
                60,
                interval_s=0.5,
            )
            wait_for(
                lambda: "reconcile_deployment" in high_log.read_text(),
                "the leader's log of it",
                10,
                interval_s=0.2,
            )
            assert "reconcile_deployment" not in low_log.read_text()
        # the leader is gone: after its peering lifetime the follower acts
        create(cluster, namespace, deployment(namespace, "second"))
        wait_for(
            lambda: engines(cluster, namespace, "second") == 2,
            "the follower to take over",
            90,
            interval_s=0.5,
        )
        assert "Resuming operations" in low_log.read_text()
        for name in ("first", "second"):
            delete_and_wait(cluster, namespace, name)
