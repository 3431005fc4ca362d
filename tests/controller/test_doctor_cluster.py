"""`weir doctor` against the real local cluster and Prometheus: it names what is broken.

A CapacityPool whose selector matches no node, a HostedEndpoint whose key
Secret does not exist and an InferenceDeployment whose weights Secret does not
exist are created; the command (a subprocess, as users run it) must exit 1 and
name all three, while the cluster's own pools stay green.
"""

from __future__ import annotations

import uuid

from kubernetes import client

from controller.test_control import example
from support.doctor import run_doctor
from support.operator import deployment

GROUP, VERSION = "weir.dev", "v1alpha1"


def test_doctor_names_a_pool_without_nodes_and_a_missing_secret(cluster, namespace):
    custom = client.CustomObjectsApi(cluster.api)
    _, pools, hosted = example()
    pool_name = f"nowhere-{uuid.uuid4().hex[:6]}"
    pool = next(iter(pools.values())).model_copy(
        update={"node_selector": {"weir.dev/pool": pool_name}}
    )
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "capacitypools",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CapacityPool",
            "metadata": {"name": pool_name},
            "spec": pool.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    )
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "hostedendpoints",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HostedEndpoint",
            "metadata": {"name": "api"},
            "spec": hosted.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    )
    gated = deployment("nowhere", name="gated")
    gated["spec"]["model"]["weightsSecretRef"] = {"name": "hf-absent"}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "inferencedeployments", gated)
    try:
        done = run_doctor(cluster.settings.kubeconfig, cluster.settings.prometheus_url)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "capacitypools", pool_name)
    assert done.returncode == 1, done.output
    failed = {(f["check"], f["subject"]): f["message"] for f in done.findings if not f["ok"]}
    assert "no Ready node" in failed[("pool", pool_name)]
    assert "does not exist" in failed[("hosted key", f"{namespace}/api")]
    assert (
        f"Secret {namespace}/hf-absent does not exist" in failed[("weights", f"{namespace}/gated")]
    )
    ok = {(f["check"], f["subject"]) for f in done.findings if f["ok"]}
    assert ("prometheus", "query API") in ok
    assert all(
        ("CRD", n) in ok for n in ("capacitypools.weir.dev", "inferencedeployments.weir.dev")
    )
