"""Fixtures of the operator tests: one operator process per module, pools per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.operator import create_pools, delete_pools, install_crds, operator_process


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
    create_pools(cluster.api, namespace)
    yield namespace
    delete_pools(cluster.api, namespace)
