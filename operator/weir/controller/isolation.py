"""NetworkPolicies an InferenceDeployment owns: its engines answer only its router.

The chart can protect the namespaces it is told about; only the operator knows
every deployment, so it is the one that can say "these engines, from this
router". Per deployment, two policies (pure, like the rest of the children):
- engines: ingress on the engine port from this deployment's router pods and
  from Prometheus (it scrapes the engines' metrics), nothing else;
- router: the client port from anyone (the Service is what clients call), every
  port from Prometheus (the metrics port is apart from the API).
They take effect only where the cluster's network plugin enforces policies;
elsewhere they are inert objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PrometheusPeer:
    """Where Prometheus runs, as a NetworkPolicy peer (namespace and pod labels)."""

    namespace_labels: tuple[tuple[str, str], ...] = (("kubernetes.io/metadata.name", "monitoring"),)
    pod_labels: tuple[tuple[str, str], ...] = (("app.kubernetes.io/name", "prometheus"),)

    def peer(self) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": dict(self.namespace_labels)},
            "podSelector": {"matchLabels": dict(self.pod_labels)},
        }


def network_policies(
    name: str,
    selector: dict[str, str],
    component_label: str,
    ports: tuple[int, int],
    prometheus: PrometheusPeer,
) -> list[dict[str, Any]]:
    """The engines' and the router's policies of one deployment.

    `name` is the policies' name stem, `selector` the labels every pod of the
    deployment carries, `component_label` the key whose value is engine or
    router, `ports` the (engine, router client) ports.
    """
    engine_port, router_port = ports

    def pods(component: str) -> dict[str, Any]:
        return {"matchLabels": {**selector, component_label: component}}

    def policy(suffix: str, component: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-{suffix}", "labels": {**selector}},
            "spec": {
                "podSelector": pods(component),
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        }

    engine_ingress = [
        {
            "from": [{"podSelector": pods("router")}, prometheus.peer()],
            "ports": [{"port": engine_port, "protocol": "TCP"}],
        }
    ]
    router_ingress = [
        {"ports": [{"port": router_port, "protocol": "TCP"}]},
        {"from": [prometheus.peer()]},
    ]
    return [
        policy("engines", "engine", engine_ingress),
        policy("router", "router", router_ingress),
    ]
