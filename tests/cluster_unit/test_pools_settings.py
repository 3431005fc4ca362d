"""The pools file, the settings and the node manifests, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.pools import GPU_RESOURCE, SPOT_TAINT, load_pools, node_manifests
from weir_lab.cluster.settings import ClusterSettings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    return path


def test_project_pools_file_has_on_demand_and_spot_pools():
    pools = load_pools(REPO / "e2e" / "pools.yaml").pools
    kinds = {p.capacity_type for p in pools}
    assert kinds == {"on-demand", "spot"}
    assert all(p.nodes >= 2 for p in pools if p.name.startswith("h100"))


def test_spot_nodes_carry_the_taint_and_gpu_capacity(tmp_path):
    pools = load_pools(
        write(
            tmp_path,
            """
pools:
  - {name: s, capacityType: spot, nodes: 2, gpuProduct: NVIDIA-L4, gpusPerNode: 4}
  - {name: o, capacityType: on-demand, nodes: 1, gpuProduct: NVIDIA-L4, gpusPerNode: 4}
""",
        )
    ).pools
    spot, on_demand = (node_manifests(p) for p in pools)
    assert [n["metadata"]["name"] for n in spot] == ["s-0", "s-1"]
    assert all(n["spec"]["taints"] == [SPOT_TAINT] for n in spot)
    assert on_demand[0]["spec"]["taints"] == []
    assert spot[0]["status"]["allocatable"][GPU_RESOURCE] == "4"
    assert spot[0]["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pools: []", "pools"),
        (
            "pools:\n  - {name: a, capacityType: preemptible, nodes: 1, gpuProduct: x, "
            "gpusPerNode: 1}",
            "capacityType",
        ),
        (
            "pools:\n  - {name: a, capacityType: spot, nodes: -1, gpuProduct: x, gpusPerNode: 1}",
            "nodes",
        ),
        (
            "pools:\n  - {name: a, capacityType: spot, nodes: 1, gpuProduct: x, gpusPerNode: 1}\n"
            "  - {name: a, capacityType: spot, nodes: 1, gpuProduct: x, gpusPerNode: 1}",
            "repeated: a",
        ),
        ("pools: [", "not valid YAML"),
    ],
)
def test_bad_pools_files_are_refused_naming_the_problem(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ClusterError) as error:
        load_pools(path)
    assert fragment in str(error.value)
    assert str(path) in str(error.value)


def test_missing_pools_file_names_the_path(tmp_path):
    with pytest.raises(ClusterError, match="cannot read pools file"):
        load_pools(tmp_path / "absent.yaml")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIR_CLUSTER_APISERVER_PORT", "17443")
    monkeypatch.setenv("WEIR_CLUSTER_STATE_DIR", str(tmp_path))
    settings = ClusterSettings()
    # with a pod network the API server listens on the host end of the veth
    assert settings.apiserver_url == "https://198.19.255.1:17443"
    assert settings.kubeconfig == tmp_path / "kubeconfig"
    monkeypatch.setenv("WEIR_CLUSTER_POD_NETWORK", "false")
    assert ClusterSettings().apiserver_url == "https://127.0.0.1:17443"


def test_settings_refuse_a_link_inside_the_pod_cidr():
    with pytest.raises(ValidationError, match="overlaps pod_cidr"):
        ClusterSettings(pod_cidr="198.19.0.0/16")
    assert ClusterSettings(pod_cidr="198.19.0.0/16", pod_network=False).host_address


@pytest.mark.parametrize("cidr", ["127.0.0.0/16", "198.18.0.0/28", "not-a-cidr"])
def test_settings_refuse_unusable_pod_cidrs(cidr):
    with pytest.raises(ValidationError) as error:
        ClusterSettings(pod_cidr=cidr)
    assert "pod_cidr" in str(error.value)


def test_settings_refuse_privileged_ports():
    with pytest.raises(ValidationError, match="apiserver_port"):
        ClusterSettings(apiserver_port=443)
