"""`weir operator run`: the operator as a process (in a pod, or beside a local cluster).

High availability uses kopf's peering: every replica announces itself with a
priority in a (Cluster)KopfPeering object and only the highest live one acts;
when it dies the next takes over after the peering lifetime. Replicas of one
Deployment share their arguments, so the priority is random unless given
(equal priorities would pause them all).
"""

from __future__ import annotations

import asyncio
import os
import secrets

import click
import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from weir.controller.kubeapi import api_client
from weir.controller.settings import OperatorSettings


def _ensure_peering(name: str, namespaces: tuple[str, ...]) -> None:
    """Create the peering object kopf patches (kopf expects it to exist)."""
    api = api_client(OperatorSettings(), pool_size=2)
    custom = client.CustomObjectsApi(api)
    try:
        if namespaces:
            for namespace in namespaces:
                body = {
                    "apiVersion": "kopf.dev/v1",
                    "kind": "KopfPeering",
                    "metadata": {"name": name, "namespace": namespace},
                }
                custom.create_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", body
                )
        else:
            body = {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": name},
            }
            custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as exc:
        if exc.status == 404:
            raise click.ClickException(
                "kopf's peering CRDs are missing: kubectl apply -f crds/kopf.dev_peerings.yaml "
                "(or run with --standalone)"
            ) from exc
        if exc.status != 409:
            raise click.ClickException(f"cannot create peering {name}: {exc.reason}") from exc
    finally:
        api.close()  # type: ignore[no-untyped-call]


@click.group()
def operator() -> None:
    """Run the weir operator."""


@operator.command()
@click.option("--namespace", "namespaces", multiple=True, help="Watch these namespaces only.")
@click.option("--standalone", is_flag=True, help="No peering: the only operator instance.")
@click.option(
    "--peering",
    default="weir",
    show_default=True,
    help="Peering object name; replicas with the same name elect one to act.",
)
@click.option(
    "--priority",
    default=None,
    type=int,
    help="Peering priority, the highest live replica acts (default: random).",
)
@click.option(
    "--liveness", default=None, help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz."
)
@click.option("--verbose", is_flag=True, help="Log every handler call.")
@click.option(
    "--kubeconfig",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Kubeconfig to use (default: WEIR_OPERATOR_KUBECONFIG, in-cluster, KUBECONFIG).",
)
def run(
    namespaces: tuple[str, ...],
    standalone: bool,
    peering: str,
    priority: int | None,
    liveness: str | None,
    verbose: bool,
    kubeconfig: str | None,
) -> None:
    """Reconcile InferenceDeployments and run their control loops until stopped."""
    import weir.controller.handlers  # noqa: F401 - registers the handlers with kopf

    if kubeconfig:
        os.environ["WEIR_OPERATOR_KUBECONFIG"] = kubeconfig
    # Given by the flag or by WEIR_OPERATOR_KUBECONFIG alone (a container's env), the
    # kubeconfig is also what kopf's own login reads, from KUBECONFIG.
    configured = OperatorSettings().kubeconfig
    if configured:
        os.environ["KUBECONFIG"] = configured

    # every line about an object names it ([namespace/name]): `kubectl logs` of a replica
    # then says which deployment a handler ran for
    kopf.configure(verbose=verbose, log_prefix=True)
    if not standalone:
        _ensure_peering(peering, namespaces)
    chosen = priority if priority is not None else secrets.randbelow(1_000_000_000) + 1
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=standalone,
            peering_name=None if standalone else peering,
            priority=chosen,
            liveness_endpoint=liveness,
        )
    )
