"""What the supervisor runs for a pod, computed from the pod alone (no cluster)."""

from __future__ import annotations

from pathlib import Path

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.controller.children import ChildSettings, Inputs, Owner, router_children
from weir_lab.closedloop.harness import hosted_manifests
from weir_lab.cluster import standins


def _router_pod() -> dict:
    spec = InferenceDeploymentSpec.model_validate(
        {
            "model": {"name": "m/x", "precision": "fp8"},
            "slo": {"ttftSeconds": 1, "itlSeconds": 0.05},
            "cost": {"budgetDollarsPerHour": 10},
            "pools": [{"pool": "od", "minReplicas": 1, "maxReplicas": 2}],
            "hosted": {"endpoint": "h", "maxShare": 0.5, "maxDollarsPerHour": 5},
        }
    )
    pool = CapacityPoolSpec.model_validate(
        {
            "gpuType": "H100",
            "gpusPerReplica": 1,
            "dollarsPerGpuHour": 3,
            "capacityType": "on-demand",
            "coldStartSeconds": 60,
        }
    )
    hosted = HostedEndpointSpec.model_validate(hosted_manifests("http://198.19.255.1:1")[1]["spec"])
    inputs = Inputs(
        Owner("llm", "ns", "uid"), spec, {"od": pool}, hosted, {"od": 1}, settings=ChildSettings()
    )
    deployment = next(c for c in router_children(inputs) if c["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    return {
        "metadata": {"name": "llm-router-1", "namespace": "ns", **template["metadata"]},
        "spec": template["spec"],
    }


def test_router_pod_runs_weir_router_with_its_mounts_at_local_paths(tmp_path: Path):
    pod = _router_pod()
    assert standins.pod_kind(pod) == "router"
    got = standins.router_standin(
        pod,
        ip="198.18.1.5",
        exec_prefix=["ip", "netns", "exec", "n"],
        pod_dir=tmp_path / "ns_llm-router-1",
    )
    argv = list(got.argv)
    assert argv[:4] == ["ip", "netns", "exec", "n"]
    assert "--host=198.18.1.5" in argv
    policy = next(a for a in argv if a.startswith("--policy-file="))
    assert policy == f"--policy-file={tmp_path}/ns_llm-router-1/root/etc/weir/router/policy.json"
    key = next(a for a in argv if a.startswith("--hosted-key-file="))
    assert key.startswith(f"--hosted-key-file={tmp_path}/ns_llm-router-1/root/")
    assert argv[-1] == f"--kubeconfig={tmp_path}/ns_llm-router-1/kubeconfig"
    assert {m.source for m in got.mounts} == {"configMap", "secret"}
    assert got.probe == standins.Probe(8080, "/readyz")
    assert got.service_account == "llm-router"
    # `weir cluster down` finds stand-ins by the state folder on their command line
    assert any(str(tmp_path) in a for a in argv[4:7])


def test_pods_weir_does_not_know_get_no_process():
    pod = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    assert standins.pod_kind(pod) == "other"
