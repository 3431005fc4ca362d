"""Fixtures of the operator tests: one operator process per module, pools per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from support.operator import GROUP, VERSION, custom, install_crds, operator_process, pools


@pytest.fixture(scope="module")
def weir_crds(cluster):
    install_crds(cluster.api)
    return cluster


@pytest.fixture(scope="module")
def operator(weir_crds, tmp_path_factory) -> Iterator[Path]:
    cluster = weir_crds
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with operator_process(cluster.settings, log, "--standalone"):
        yield log


@pytest.fixture
def capacity_pools(weir_crds, cluster, namespace) -> Iterator[str]:
    api = custom(cluster.api)
    for pool in pools(namespace):
        api.create_cluster_custom_object(GROUP, VERSION, "capacitypools", pool)
    yield namespace
    for pool in pools(namespace):
        try:
            api.delete_cluster_custom_object(
                GROUP, VERSION, "capacitypools", pool["metadata"]["name"]
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
