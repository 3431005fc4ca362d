"""The Helm chart: lint, schema, alert rules, server-side dry run and an install on the cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "weir"
ALL_ON = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"]


@pytest.fixture(scope="module")
def tools():
    return ensure(REPO / "e2e")


def run(
    *argv: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return done


def template(tools, *extra: str) -> str:
    return run(
        str(tools.helm),
        "template",
        "weir",
        str(CHART),
        "--namespace",
        "weir-system",
        "--kube-version",
        "1.34.4",
        *extra,
    ).stdout


def test_lint_strict_with_every_feature(tools):
    run(str(tools.helm), "lint", "--strict", str(CHART))
    run(str(tools.helm), "lint", "--strict", str(CHART), *ALL_ON)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicaCount=0", "replicaCount"),
        ("operator.prometheusUrl=ftp://x", "prometheusUrl"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
    ],
)
def test_schema_refuses_bad_values_naming_them(tools, setting, field):
    done = run(str(tools.helm), "lint", "--strict", str(CHART), "--set", setting, check=False)
    assert done.returncode != 0
    assert field in done.stdout + done.stderr


def test_alert_rules_are_valid_promql(tools, tmp_path):
    docs = list(yaml.safe_load_all(template(tools, *ALL_ON)))
    rule = next(d for d in docs if d and d["kind"] == "PrometheusRule")
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert names == [
        "WeirUsefulFractionBelowTarget",
        "WeirBudgetExhausted",
        "WeirMetricsMissing",
        "WeirSpotInterruptionStorm",
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    assert "SUCCESS" in run("promtool", "check", "rules", str(path)).stdout


def kubectl(
    tools, cluster, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(
        str(tools.kubectl), f"--kubeconfig={cluster.settings.kubeconfig}", *args, stdin=stdin
    )


def test_server_side_dry_run_and_install(tools, cluster, namespace):
    kubectl(
        tools, cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds")
    )
    peering = f"weir-{namespace}"
    values = ["--set", f"operator.peering={peering}", "--set", "replicaCount=1"]
    manifests = run(
        str(tools.helm),
        "template",
        namespace,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        "1.34.4",
        *values,
    ).stdout
    kubectl(
        tools, cluster, "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifests
    )
    helm = [str(tools.helm), f"--kubeconfig={cluster.settings.kubeconfig}"]
    run(*helm, "install", namespace, str(CHART), "--namespace", namespace, *values)
    try:

        def running_pod():
            pods = cluster.core.list_namespaced_pod(
                namespace, label_selector="app.kubernetes.io/component=operator"
            ).items
            up = [p for p in pods if p.status.phase == "Running"]
            return up[0] if up else None

        pod = wait_for(running_pod, "the operator pod to run", 60)
        container = pod.spec.containers[0]
        assert container.args[:3] == ["operator", "run", f"--peering={peering}"]
        assert pod.spec.service_account_name == f"{namespace}-weir"
        assert container.security_context.read_only_root_filesystem is True
        env = {e.name: e.value for e in container.env}
        assert env["WEIR_OPERATOR_PROMETHEUS_URL"].startswith("http")
        assert "nvidia.com/gpu" not in (container.resources.requests or {})
    finally:
        run(*helm, "uninstall", namespace, "--namespace", namespace)
