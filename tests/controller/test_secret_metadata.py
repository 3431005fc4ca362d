"""The operator reads a Secret's metadata only, on the real API server.

A hosted key or a weights token must not pass through the operator: it needs
only the opt-in annotation of the Secret a HostedEndpoint or a deployment's
weightsSecretRef names, and the existence of the client-token Secret it
creates. So every read asks for PartialObjectMetadata.
The tests record every byte the API server sends back to the operator's
client and look for the key in them; a reply that is not metadata (a proxy
that ignores the Accept header) is refused, so the guarantee cannot lapse
without the read failing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from support.operator import GROUP, VERSION, custom, deployment
from weir.api import InferenceDeploymentSpec
from weir.controller.apply import ApplyError
from weir.controller.children import InvalidReferenceError
from weir.controller.kube import KubeCluster
from weir.controller.port import OwnerRef
from weir.controller.references import (
    METADATA_ONLY,
    SECRET_OPT_IN,
    WEIGHTS_OPT_IN,
    read_hosted,
    read_secret_metadata,
)

KEY = "sk-never-in-the-operator-0123456789"


class Recorder:
    """Every reply body the client's REST layer receives, as bytes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.bodies: list[bytes] = []
        self.accepts: list[str] = []
        self._api = api
        self._request = api.rest_client.request
        api.rest_client.request = self._record

    def _record(self, method: str, url: str, headers: Any = None, **kwargs: Any) -> Any:
        self.accepts.append((headers or {}).get("Accept", ""))
        reply = self._request(method, url, headers=headers, **kwargs)
        self.bodies.append(reply.read())
        return reply

    def close(self) -> None:
        self._api.rest_client.request = self._request

    def saw(self, text: str) -> bool:
        return any(text.encode() in body for body in self.bodies)


@contextmanager
def recording(api: client.ApiClient) -> Iterator[Recorder]:
    rec = Recorder(api)
    try:
        yield rec
    finally:
        rec.close()


def _secret(cluster: Any, namespace: str, name: str, annotations: dict[str, str]) -> None:
    cluster.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": name, "annotations": annotations}, "stringData": {"api-key": KEY}},
    )


def _endpoint(cluster: Any, namespace: str, name: str, secret: str) -> None:
    custom(cluster.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "hostedendpoints",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HostedEndpoint",
            "metadata": {"name": name},
            "spec": {
                "baseUrl": "https://api.example.invalid/v1",
                "model": "m",
                "secretRef": {"name": secret, "key": "api-key"},
                "dollarsPerMillionInputTokens": 0.2,
                "dollarsPerMillionCachedInputTokens": 0.1,
                "dollarsPerMillionOutputTokens": 0.6,
                "latency": {"ttftP50Seconds": 0.4, "ttftP95Seconds": 0.9, "itlSeconds": 0.025},
                "requestsPerMinute": 6000,
            },
        },
    )


def _spec(endpoint: str) -> InferenceDeploymentSpec:
    body = deployment("p")["spec"]
    return InferenceDeploymentSpec.model_validate(
        {**body, "hosted": {"endpoint": endpoint, "maxDollarsPerHour": 5}}
    )


def test_the_opt_in_is_checked_without_the_key_reaching_the_operator(
    weir_crds: Any, namespace: str
) -> None:
    _secret(weir_crds, namespace, "key", {SECRET_OPT_IN: "other, hosted"})
    _endpoint(weir_crds, namespace, "hosted", "key")
    with recording(weir_crds.api) as recorder:
        hosted = read_hosted(weir_crds.api, namespace, _spec("hosted"))
    assert hosted is not None and hosted.secret_ref is not None
    assert METADATA_ONLY in recorder.accepts
    assert len(recorder.bodies) == 2  # the endpoint, then the Secret's metadata
    assert not recorder.saw(KEY)
    assert not recorder.saw('"data"')
    meta = read_secret_metadata(weir_crds.api, namespace, "key")
    assert meta is not None and meta["annotations"][SECRET_OPT_IN] == "other, hosted"
    # The key is there, for the router's mount: only the operator never sees it.
    assert weir_crds.core.read_namespaced_secret("key", namespace).data["api-key"]


def test_a_secret_that_does_not_name_the_endpoint_is_refused_unread(
    weir_crds: Any, namespace: str
) -> None:
    _secret(weir_crds, namespace, "key", {SECRET_OPT_IN: "someone-else"})
    _endpoint(weir_crds, namespace, "hosted", "key")
    with (
        recording(weir_crds.api) as recorder,
        pytest.raises(InvalidReferenceError, match="annotate the Secret"),
    ):
        read_hosted(weir_crds.api, namespace, _spec("hosted"))
    assert recorder.bodies and not recorder.saw(KEY)


def test_a_missing_secret_is_an_invalid_reference(weir_crds: Any, namespace: str) -> None:
    _endpoint(weir_crds, namespace, "hosted", "absent")
    with pytest.raises(InvalidReferenceError, match="Secret absent not found"):
        read_hosted(weir_crds.api, namespace, _spec("hosted"))


def test_the_client_token_secret_is_checked_by_its_metadata(weir_crds: Any, namespace: str) -> None:
    owner = custom(weir_crds.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferencedeployments", deployment("p")
    )
    ref = OwnerRef(name=owner["metadata"]["name"], uid=owner["metadata"]["uid"])
    kube = KubeCluster(weir_crds.api)
    assert kube.ensure_secret(namespace, "tokens", ref, "token") is True
    token = weir_crds.core.read_namespaced_secret("tokens", namespace).data["token"]
    with recording(weir_crds.api) as rec:
        assert kube.ensure_secret(namespace, "tokens", ref, "token") is False
    assert rec.accepts == [METADATA_ONLY]
    assert not rec.saw(token) and not rec.saw('"data"')


def test_a_weights_secret_must_name_the_deployment_and_is_read_as_metadata(
    weir_crds: Any, namespace: str
) -> None:
    """The engines read the Hugging Face token; the operator only checks the opt-in."""
    _secret(weir_crds, namespace, "hf", {WEIGHTS_OPT_IN: "other"})
    kube = KubeCluster(weir_crds.api)
    with (
        recording(weir_crds.api) as rec,
        pytest.raises(InvalidReferenceError, match=f"annotate the Secret {WEIGHTS_OPT_IN}=llm"),
    ):
        kube.check_weights_secret(namespace, "llm", "hf")
    with pytest.raises(InvalidReferenceError, match="Secret absent not found"):
        kube.check_weights_secret(namespace, "llm", "absent")
    weir_crds.core.patch_namespaced_secret(
        "hf", namespace, {"metadata": {"annotations": {WEIGHTS_OPT_IN: "other, llm"}}}
    )
    with recording(weir_crds.api) as allowed:
        kube.check_weights_secret(namespace, "llm", "hf")
    for recorder in (rec, allowed):
        assert recorder.accepts == [METADATA_ONLY]
        assert not recorder.saw(KEY) and not recorder.saw('"data"')


class _IgnoresAccept(BaseHTTPRequestHandler):
    """An API server (or proxy) that answers every read with the whole Secret."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "key"}, "data": {}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_reply_that_is_not_metadata_is_refused() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoresAccept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = client.Configuration(host=f"http://127.0.0.1:{server.server_port}")
        with (
            client.ApiClient(config) as api,
            pytest.raises(ApplyError, match="ignored the Accept header"),
        ):
            read_secret_metadata(api, "ns", "key")
    finally:
        server.shutdown()
        server.server_close()
