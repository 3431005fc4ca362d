"""The Helm chart: lint, schema, alert rules, RBAC modes, NetworkPolicies, Pod Security,
server-side dry run and an install on the cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from support.k8srules import restricted_problems
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "weir"
ALL_ON = [
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "podMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
]
SCRAPE = yaml.safe_load((CHART / "scrape" / "pods.yaml").read_text())
# prometheus-operator's spelling of a relabel_config's fields
OPERATOR_FIELDS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "regex": "regex",
    "modulus": "modulus",
    "targetLabel": "target_label",
    "replacement": "replacement",
    "action": "action",
}


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
    namespaced = ["--set", "watchNamespaces={a,b}", "--set", "networkPolicy.enabled=true"]
    run(str(tools.helm), "lint", "--strict", str(CHART), *ALL_ON, *namespaced)


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


NAMESPACED = ["--set", "watchNamespaces={team-a,team-b}"]
POLICIES = ["--set", "networkPolicy.enabled=true"]


def docs(tools, *extra: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(template(tools, *extra)) if d]


def by_kind(rendered: list[dict], kind: str) -> list[dict]:
    return [d for d in rendered if d["kind"] == kind]


def verbs_on(rules: list[dict], resource: str) -> set[str]:
    return {v for r in rules if resource in r["resources"] for v in r["verbs"]}


WRITES = {"create", "patch", "update", "delete"}


def test_cluster_mode_is_one_cluster_role(tools):
    rendered = docs(tools)
    (role,) = by_kind(rendered, "ClusterRole")
    assert verbs_on(role["rules"], "deployments") >= WRITES
    assert verbs_on(role["rules"], "secrets") == {"get", "create"}  # never list or watch
    assert by_kind(rendered, "Role") == [] and by_kind(rendered, "NetworkPolicy") == []
    assert [p["kind"] for p in by_kind(rendered, "ClusterKopfPeering")] == ["ClusterKopfPeering"]


def test_namespaced_mode_writes_only_in_the_watched_namespaces(tools):
    rendered = docs(tools, *NAMESPACED)
    (cluster,) = by_kind(rendered, "ClusterRole")
    for resource in ("deployments", "configmaps", "serviceaccounts", "roles", "rolebindings"):
        assert verbs_on(cluster["rules"], resource) == set(), resource
    assert verbs_on(cluster["rules"], "pods") == {"get", "list", "watch"}
    writable = {res for r in cluster["rules"] if set(r["verbs"]) & WRITES for res in r["resources"]}
    assert writable == {"capacitypools", "clusterkopfpeerings"}  # cluster-scoped, weir's own
    roles = {r["metadata"]["namespace"]: r for r in by_kind(rendered, "Role")}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert verbs_on(role["rules"], "deployments") >= WRITES
        assert verbs_on(role["rules"], "rolebindings") >= WRITES
        assert verbs_on(role["rules"], "endpointslices") == {"get", "list", "watch"}
        assert verbs_on(role["rules"], "secrets") == {"get", "create"}
    bindings = by_kind(rendered, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "weir",
        }
        assert binding["subjects"][0]["namespace"] == "weir-system"
    (operator,) = by_kind(rendered, "Deployment")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    peerings = by_kind(rendered, "KopfPeering")
    assert {p["metadata"]["namespace"] for p in peerings} == {"team-a", "team-b"}
    assert by_kind(rendered, "ClusterKopfPeering") == []


def ingress_peers(policy: dict) -> list[tuple[tuple[int, ...], list[dict] | None]]:
    return [
        (tuple(p["port"] for p in rule.get("ports", [])), rule.get("from"))
        for rule in policy["spec"]["ingress"]
    ]


def test_network_policy_routers_open_to_clients_engines_to_routers_and_prometheus(tools):
    rendered = docs(tools, *NAMESPACED, *POLICIES)
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p
        for p in by_kind(rendered, "NetworkPolicy")
    }
    assert set(policies) == {
        ("weir-system", "weir-operator"),
        *((ns, f"weir-{what}") for ns in ("team-a", "team-b") for what in ("engines", "routers")),
    }
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    engines = policies[("team-a", "weir-engines")]
    assert engines["spec"]["podSelector"]["matchLabels"]["weir.dev/component"] == "engine"
    assert engines["spec"]["policyTypes"] == ["Ingress"]
    ((ports, peers),) = ingress_peers(engines)
    assert ports == (8000,)
    assert peers == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/managed-by": "weir",
                    "weir.dev/component": "router",
                }
            }
        },
        prometheus,
    ]
    routers = policies[("team-b", "weir-routers")]
    assert routers["spec"]["podSelector"]["matchLabels"]["weir.dev/component"] == "router"
    assert ingress_peers(routers) == [((8080,), None), ((), [prometheus])]  # None: any client
    ((ports, peers),) = ingress_peers(policies[("weir-system", "weir-operator")])
    assert ports == (9464,) and peers == [prometheus]


def test_network_policy_clients_narrow_the_routers(tools):
    clients = [
        "--set-json",
        'networkPolicy.clients=[{"namespaceSelector":{"matchLabels":{"a":"b"}}}]',
    ]
    rendered = docs(tools, *NAMESPACED, *POLICIES, *clients)
    routers = next(
        p for p in by_kind(rendered, "NetworkPolicy") if p["metadata"]["name"] == "weir-routers"
    )
    assert ingress_peers(routers)[0] == (
        (8080,),
        [{"namespaceSelector": {"matchLabels": {"a": "b"}}}],
    )


def test_network_policy_without_namespaces_says_what_it_needs(tools):
    done = run(
        str(tools.helm),
        "template",
        "weir",
        str(CHART),
        "--kube-version",
        "1.34.4",
        *POLICIES,
        check=False,
    )
    assert done.returncode != 0
    assert "networkPolicy.namespaces" in done.stderr


def test_schema_refuses_a_namespace_that_is_no_dns_label(tools):
    done = run(
        str(tools.helm),
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "watchNamespaces={Team_A}",
        check=False,
    )
    assert done.returncode != 0
    assert "watchNamespaces" in done.stdout + done.stderr


def test_rendered_pods_meet_pod_security_restricted(tools):
    for extra in ([], NAMESPACED):
        (operator,) = by_kind(docs(tools, *extra), "Deployment")
        assert restricted_problems(operator["spec"]["template"]["spec"], "operator") == []


def test_plain_http_hosts_reach_the_operator_as_a_json_list(tools):
    hosts = ["--set", "operator.allowInsecureHosted={hosted.test,10.0.0.0/8}"]
    (operator,) = by_kind(docs(tools, *hosts), "Deployment")
    env = operator_env(operator)
    assert json.loads(env["WEIR_OPERATOR_ALLOW_INSECURE_HOSTED"]) == ["hosted.test", "10.0.0.0/8"]
    (default,) = by_kind(docs(tools), "Deployment")
    assert json.loads(operator_env(default)["WEIR_OPERATOR_ALLOW_INSECURE_HOSTED"]) == []


def operator_env(deployment: dict) -> dict:
    """The operator container's environment: literal values, or the field a value is from."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e.get("value", e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"))
        for e in container["env"]
    }


def test_router_placement_reaches_the_operator_and_replicas_name_their_pods(tools):
    placement = [
        *("--set", "router.nodeSelector.weir\\.dev/node-role=system"),
        *("--set", "router.tolerations[0].key=weir.dev/node-role"),
        *("--set", "router.tolerations[0].value=system"),
        *("--set", "router.tolerations[0].effect=NoSchedule"),
    ]
    (operator,) = by_kind(docs(tools, *placement), "Deployment")
    env = operator_env(operator)
    assert json.loads(env["WEIR_OPERATOR_ROUTER_NODE_SELECTOR"]) == {"weir.dev/node-role": "system"}
    assert json.loads(env["WEIR_OPERATOR_ROUTER_TOLERATIONS"]) == [
        {"key": "weir.dev/node-role", "value": "system", "effect": "NoSchedule"}
    ]
    assert env["POD_ID"] == "metadata.name"  # kopf's peer id: the peering names the pod
    (default,) = by_kind(docs(tools), "Deployment")
    assert json.loads(operator_env(default)["WEIR_OPERATOR_ROUTER_NODE_SELECTOR"]) == {}
    assert json.loads(operator_env(default)["WEIR_OPERATOR_ROUTER_TOLERATIONS"]) == []
    # a read-only root: the client's in-cluster CA file and kopf's temporary files go here
    pod = default["spec"]["template"]["spec"]
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    done = run(
        str(tools.helm), "lint", "--strict", str(CHART),
        "--set", "router.tolerations[0].operator=Maybe", check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "operator" in done.stdout + done.stderr


def test_the_peering_objects_exist_before_the_replicas_start(tools):
    """Installed as a pre-install hook: otherwise the first replica creates the object
    (the operator does when it is missing) and the install fails on "already exists"."""
    for extra in ([], NAMESPACED):
        rendered = docs(tools, *extra)
        peerings = by_kind(rendered, "KopfPeering") + by_kind(rendered, "ClusterKopfPeering")
        assert peerings
        for peering in peerings:
            annotations = peering["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "pre-install"
            assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"


def as_prometheus(relabeling: dict) -> dict:
    """A PodMonitor relabeling in Prometheus' spelling, `replace` (the default) left out."""
    config = {OPERATOR_FIELDS[k]: v for k, v in relabeling.items()}
    if config.get("action") == "replace":
        del config["action"]
    return config


def test_pod_monitor_relabels_exactly_as_the_chart_scrape_config(tools):
    rendered = docs(tools, "--set", "podMonitor.enabled=true")
    (monitor,) = by_kind(rendered, "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert [as_prometheus(r) for r in endpoint["relabelings"]] == SCRAPE["relabel_configs"]
    assert SCRAPE["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    selector = monitor["spec"]["selector"]
    assert selector["matchLabels"] == {"app.kubernetes.io/managed-by": "weir"}
    assert selector["matchExpressions"] == [
        {"key": "weir.dev/component", "operator": "In", "values": ["router", "engine"]}
    ]
    # the labels the operator's queries group by come from the relabelling
    targets = {c.get("target_label") for c in SCRAPE["relabel_configs"]}
    assert {"namespace", "pod", "__metrics_path__"} <= targets
    (labelmap,) = [c for c in SCRAPE["relabel_configs"] if c.get("action") == "labelmap"]
    assert labelmap["regex"] == "__meta_kubernetes_pod_label_(.+)"  # weir_dev_deployment


def test_monitors_carry_their_configured_labels_and_watch_the_watched_namespaces(tools):
    rendered = docs(
        tools,
        *ALL_ON,
        *NAMESPACED,
        "--set",
        "podMonitor.labels.release=kps",
        "--set",
        "serviceMonitor.labels.release=other",
    )
    (pods,) = by_kind(rendered, "PodMonitor")
    (operator,) = by_kind(rendered, "ServiceMonitor")
    assert pods["metadata"]["labels"]["release"] == "kps"
    assert pods["metadata"]["labels"]["app.kubernetes.io/instance"] == "weir"
    assert operator["metadata"]["labels"]["release"] == "other"
    assert pods["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert by_kind(docs(tools), "PodMonitor") == []  # off unless asked for


def test_readme_plain_prometheus_job_is_the_chart_scrape_config():
    readme = (CHART / "README.md").read_text()
    blocks = [b.split("\n```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    jobs = [
        job
        for block in blocks
        for job in (yaml.safe_load(block) or {}).get("scrape_configs", [])
        if job.get("job_name") == SCRAPE["job_name"]
    ]
    assert jobs == [SCRAPE]
