"""Which client errors weir retries: the one mapping both cluster adapters share."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from weir.controller.apply import Applier, ApplyError, waves, wrap_api_error
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


class _Recorder:
    """The dynamic client's resource, as the API server answers a non-admin: a RoleBinding
    whose Role it has not seen is refused with 404 (its escalation check reads the Role)."""

    def __init__(self, kind: str, seen: list[str], visible: set[str]) -> None:
        self.kind, self.seen, self.visible = kind, seen, visible

    def server_side_apply(self, body: dict, **_: object) -> object:
        if self.kind == "RoleBinding" and body["roleRef"]["name"] not in self.visible:
            raise ApiException(status=404, reason="Not Found")
        self.seen.append(f"{self.kind}/{body['metadata']['name']}")
        if self.kind == "Role":
            self.visible.add(body["metadata"]["name"])
        return type("Applied", (), {"to_dict": lambda _self: {"status": {}}})()


def _applier(seen: list[str], visible: set[str]) -> Applier:
    applier = Applier.__new__(Applier)  # no discovery: the resources are the recorder's
    applier._resource = lambda _version, kind: _Recorder(kind, seen, visible)  # type: ignore[method-assign]
    return applier


def _manifest(kind: str, name: str, **extra: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
        **extra,
    }


def test_bindings_are_applied_after_the_roles_they_name() -> None:
    seen: list[str] = []
    binding = _manifest("RoleBinding", "r", roleRef={"kind": "Role", "name": "r"})
    manifests = [binding, _manifest("Role", "r"), _manifest("ServiceAccount", "r")]
    assert [m["kind"] for m in waves(manifests)[-1]] == ["RoleBinding"]
    _applier(seen, set()).apply(manifests)
    assert seen[-1] == "RoleBinding/r"
    assert sorted(seen[:-1]) == ["Role/r", "ServiceAccount/r"]


def test_a_binding_whose_role_is_not_visible_yet_is_retried() -> None:
    binding = _manifest("RoleBinding", "r", roleRef={"kind": "Role", "name": "later"})
    with pytest.raises(ApplyError) as raised:
        _applier([], set()).apply([binding])
    assert raised.value.temporary is True
    assert "Role later is not visible" in str(raised.value)
    service = _applier([], set())
    service._resource = lambda _v, _k: _Missing()  # type: ignore[method-assign]
    with pytest.raises(ApplyError) as other:  # a 404 elsewhere stays a bug to report
        service.apply([_manifest("Service", "x")])
    assert other.value.temporary is False


class _Missing:
    def server_side_apply(self, **_: object) -> object:
        raise ApiException(status=404, reason="Not Found")
