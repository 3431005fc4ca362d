"""Which client errors weir retries: the one mapping both cluster adapters share."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from weir.controller.apply import ApplyError, wrap_api_error
from weir.controller.port import ClusterError


@pytest.mark.parametrize(
    ("status", "temporary"),
    [
        *((status, True) for status in (0, None, 409, 429, 500, 503)),
        *((status, False) for status in (400, 403, 404, 422)),
    ],
)
def test_temporary_by_status(status: int | None, temporary: bool) -> None:
    exc = ApiException(status=status, reason="Why")
    error = wrap_api_error("write status of ns/x", exc, ClusterError)
    assert type(error) is ClusterError
    assert error.temporary is temporary
    assert str(error) == f"write status of ns/x: {status or 0} Why"


def test_kind_is_kept_and_missing_reason_is_dropped() -> None:
    error = wrap_api_error("apply Service ns/x", ApiException(status=422), ApplyError)
    assert isinstance(error, ApplyError)
    assert str(error) == "apply Service ns/x: 422"
