"""The real node's settings, configuration files and sandbox image, without running it."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from pydantic import ValidationError

from weir_lab.cluster import apiservice, images, node
from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.pki import write_client_cert, write_pki
from weir_lab.cluster.settings import ClusterSettings


def _tools(tmp_path: Path) -> node.NodeTools:
    pause = tmp_path / "pause-0123abcd" / "pause"
    pause.parent.mkdir()
    pause.write_bytes(b"\x7fELF not really")
    bin_dir = Path("/usr/lib/cni")
    return node.NodeTools(
        Path("/k/kubelet"), pause, Path("/c/containerd"), Path("/c/ctr"), Path("/r/runc"), bin_dir
    )


def test_the_node_is_off_by_default_and_its_ports_count_when_on(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("WEIR_CLUSTER_REAL_NODE", raising=False)
    assert ClusterSettings().real_node is False
    assert "kubelet" not in ClusterSettings().ports()
    on = ClusterSettings(real_node=True)
    assert on.ports()["kubelet"] == on.kubelet_port


@pytest.mark.parametrize(
    "pods", ["198.18.5.0/24", "10.96.0.0/24", "198.19.255.0/24"], ids=["pods", "svc", "link"]
)
def test_the_nodes_pod_range_stays_outside_the_clusters_ranges(pods: str):
    with pytest.raises(ValidationError, match="overlaps"):
        ClusterSettings(
            real_node=True,
            real_node_pod_cidr=pods,
            pod_cidr="198.18.0.0/16",
            service_cidr="10.96.0.0/16",
            link_cidr="198.19.255.0/30",
        )


def test_the_configs_carry_the_machines_needs_and_stay_in_the_state_folder(tmp_path: Path):
    settings = ClusterSettings(state_dir=tmp_path / "state", real_node=True)
    pki = write_pki(tmp_path / "state" / "pki")
    paths = node._write_configs(settings, _tools(tmp_path), pki)
    root = str(paths.root)

    containerd = tomllib.loads(paths.containerd_config.read_text())
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert cri["sandbox_image"] == "weir.local/pause:0123abcd"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"].startswith(root)
    for key in ("root", "state"):
        assert containerd[key].startswith(root)

    kubelet = yaml.safe_load(paths.kubelet_config.read_text())
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupsPerQOS"] is False
    assert kubelet["enforceNodeAllocatable"] == [] and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["registerWithTaints"] == [node.TAINT]
    assert kubelet["makeIPTablesUtilChains"] is False

    (conflist,) = paths.cni_conf_dir.glob("*.conflist")
    bridge = json.loads(conflist.read_text())["plugins"][0]
    assert bridge["ipMasq"] is False  # no iptables rule left on the host
    assert bridge["ipam"]["ranges"] == [[{"subnet": settings.real_node_pod_cidr}]]
    assert bridge["ipam"]["dataDir"].startswith(root)
    assert "system:node:system-0" in _subject(paths.root / "kubelet" / "client.crt")


def _subject(cert: Path) -> str:
    return x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string()


def test_the_pause_archive_is_one_layer_named_by_its_digest(tmp_path: Path):
    binary = tmp_path / "pause"
    binary.write_bytes(b"static binary")
    archive = tmp_path / "pause.tar"
    images.write_pause_archive(binary, "weir.local/pause:x", archive)
    with tarfile.open(archive) as tar:
        (manifest,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(manifest["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile("layer.tar").read()  # type: ignore[union-attr]
    assert manifest["RepoTags"] == ["weir.local/pause:x"]
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    again = tmp_path / "again.tar"
    images.write_pause_archive(binary, "weir.local/pause:x", again)
    assert again.read_bytes() == archive.read_bytes()  # same input, same image


def test_cleanup_without_a_node_removes_nothing(tmp_path: Path):
    settings = ClusterSettings(state_dir=tmp_path / "state")
    (tmp_path / "state").mkdir()
    assert node.cleanup(settings) == []  # not even another cluster's node bridge


def test_the_pki_issues_a_node_certificate_from_its_ca(tmp_path: Path):
    pki = write_pki(tmp_path)
    write_client_cert(pki, tmp_path / "n.crt", tmp_path / "n.key", "system:node:x", "system:nodes")
    assert _subject(tmp_path / "n.crt") == "CN=system:node:x,O=system:nodes"
    assert (tmp_path / "n.key").stat().st_mode & 0o777 == 0o600


def test_the_node_refuses_to_start_without_root(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match=r"needs root.*WEIR_CLUSTER_REAL_NODE=false"):
        node.ensure_tools(ClusterSettings(real_node=True))


def test_loading_an_image_without_a_running_node_says_how_to_start_one(tmp_path: Path):
    settings = ClusterSettings(state_dir=tmp_path / "state", real_node=True)
    with pytest.raises(ClusterError, match=r"containerd is not running.*REAL_NODE=true"):
        node.load_image(settings, "ghcr.io/weir-dev/weir:0.1.0")


def test_cleanup_removes_the_nodes_files_outside_its_folder_and_no_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    results, plugins, other = tmp_path / "results", tmp_path / "kubelet" / "plugins", tmp_path / "o"
    for folder in (results, plugins, other):
        folder.mkdir(parents=True)
    ours = [results / "weir-node-abc123-eth0", results / "cni-loopback-abc123-lo"]
    theirs = [results / "podman-def456-eth0", other / "keep"]
    for path in (*ours, *theirs, plugins / "kubelet.sock"):
        path.write_text("{}")
    monkeypatch.setattr(node, "_CNI_RESULTS", results)
    monkeypatch.setattr(node, "_CONTAINER_LOGS", other)
    monkeypatch.setattr(node, "_MADE_FOLDERS", (plugins, plugins.parent, other))
    monkeypatch.setattr(node, "BRIDGE", "weir-no-such0")  # a running node's bridge stays
    settings = ClusterSettings(state_dir=tmp_path / "state")
    root = node.NodePaths.of(settings).root
    root.mkdir(parents=True)
    (other / "ours_p-1.log").symlink_to(root / "pod-logs" / "0.log")
    (other / "theirs_p-2.log").symlink_to(tmp_path / "elsewhere.log")

    removed = node.cleanup(settings)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    assert sorted(p.name for p in other.iterdir()) == ["keep", "theirs_p-2.log"]
    assert not plugins.parent.exists()  # emptied, so removed; `other` holds a file
    assert str(plugins / "kubelet.sock") in removed and str(other) not in removed


def test_the_service_rule_is_its_clusters_alone(tmp_path: Path):
    """Each cluster's rule is told apart by its state folder, so cleaning up one node
    folder (a test's) cannot match a running cluster's rule (tests/cluster checks it on
    the host's iptables)."""
    running = ClusterSettings(state_dir=tmp_path / "running", real_node=True)
    other = ClusterSettings(state_dir=tmp_path / "other", real_node=True)
    assert apiservice.comment(running) != apiservice.comment(other)
    assert apiservice.comment(running) in apiservice.rule(running)
    assert apiservice.comment(running) not in apiservice.rule(other)
    assert "'" not in apiservice.comment(running)  # iptables -S would escape it
