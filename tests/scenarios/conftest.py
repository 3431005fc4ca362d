"""The closed loop under test: hosted stand-in, operator process, the deployment.

Each scenario gets a fresh namespace, its own pools (prefixed by the
namespace), a hosted stand-in on the host end of the pods' veth, and the
operator as a process; `loop_for(shape)` applies the deployment and waits
until its router answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from weir_lab.closedloop.harness import (
    HOSTED_KEY,
    MODEL,
    Loop,
    OperatorProcess,
    Shape,
    deployment_manifest,
    hosted_manifests,
    install_crds,
    pool_manifests,
)
from weir_lab.closedloop.hosted import HostedStandIn
from weir_lab.cluster.wait import wait_for


@pytest.fixture
def hosted(cluster) -> Iterator[HostedStandIn]:
    with HostedStandIn(cluster.settings.host_address, model=MODEL, api_key=HOSTED_KEY) as standin:
        yield standin


@pytest.fixture
def operator_env() -> dict[str, str]:
    """Extra environment of the operator process; a scenario module overrides it."""
    return {}


@pytest.fixture
def operator(cluster, tmp_path, operator_env) -> Iterator[OperatorProcess]:
    install_crds(cluster.api)
    proc = OperatorProcess(cluster.settings, tmp_path / "operator.log", env=operator_env).start()
    yield proc
    proc.stop()


@pytest.fixture
def loop_for(cluster, namespace, hosted, operator) -> Iterator[Callable[[Shape], Loop]]:
    made: list[Loop] = []

    def make(shape: Shape) -> Loop:
        loop = Loop(cluster.settings, cluster.api, namespace)
        for manifest in [*pool_manifests(namespace, shape), *hosted_manifests(hosted.url)]:
            loop.apply(manifest)
        loop.apply(deployment_manifest(namespace, shape))
        made.append(loop)
        loop.wait_router(120)
        floor = shape.on_demand[0] + shape.spot[0]
        wait_for(lambda: loop.ready_engines() >= floor, f"{floor} engine replica(s) ready", 120)
        return loop

    yield make
    for loop in made:
        # let the operator release its finalizer before the namespace goes
        loop.custom.delete_namespaced_custom_object(
            "weir.dev", "v1alpha1", loop.namespace, "inferencedeployments", loop.name
        )
        wait_for(lambda lp=loop: not _exists(lp), "the InferenceDeployment to be deleted", 60)
        loop.delete_pools(loop.namespace)


def _exists(loop: Loop) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        loop.resource()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
