"""The local cluster's Prometheus scrapes pods with the chart's job, unchanged but for
where the API server is and how to authenticate to it."""

from __future__ import annotations

from pathlib import Path

import yaml

from weir_lab.cluster import controlplane
from weir_lab.cluster.pki import write_pki
from weir_lab.cluster.settings import ClusterSettings

CHART_JOB = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "charts" / "weir" / "scrape" / "pods.yaml").read_text()
)


def rendered(tmp_path: Path, pod_network: bool) -> tuple[ClusterSettings, dict]:
    settings = ClusterSettings(state_dir=tmp_path, pod_network=pod_network)
    (tmp_path / "prometheus").mkdir()
    pki = write_pki(tmp_path / "pki")
    controlplane._render_prometheus(settings, pki)
    return settings, yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())


def test_pods_are_discovered_with_the_chart_relabelling(tmp_path):
    settings, config = rendered(tmp_path, pod_network=True)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "local", "weir-pods"}  # `local`: loopback file_sd
    pods = jobs["weir-pods"]
    assert {k: v for k, v in pods.items() if k != "kubernetes_sd_configs"} == {
        k: v for k, v in CHART_JOB.items() if k != "kubernetes_sd_configs"
    }
    (sd,) = pods["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    assert sd["api_server"] == settings.apiserver_url
    tls = sd["tls_config"]
    assert tls["ca_file"].endswith("/pki/ca.crt")
    # its own certificate, not the admin's: it may only read pods (kube.grant_prometheus)
    assert tls["cert_file"].endswith("/pki/prometheus.crt")
    assert tls["key_file"].endswith("/pki/prometheus.key")


def test_without_a_pod_network_no_pod_job(tmp_path):
    # nothing answers at pod addresses then, and the host has no route to them
    _, config = rendered(tmp_path, pod_network=False)
    assert [job["job_name"] for job in config["scrape_configs"]] == ["prometheus", "local"]
