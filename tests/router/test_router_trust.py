"""Who may use the router and what it trusts: tokens, the metrics port, https, the Secret
opt-in, client-scoped idempotency keys, bounded key memory. Each failed on 0e4ffea."""

from __future__ import annotations

import httpx
import openai
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from router.helpers import (
    MODEL,
    chat,
    engine,
    hosted_spec,
    local_endpoints,
    router,
    router_settings,
)
from support.promtext import metric
from weir.api.hosted import HostedEndpointSpec
from weir.controller.children import InvalidReferenceError
from weir.controller.references import SECRET_OPT_IN, check_secret_opt_in
from weir.router.cli import router as router_cli
from weir.router.config import RouterPolicy, RouterSettings, host_allowed
from weir.router.dedupe import DuplicateKeys
from weir.router.errors import ConfigError
from weir.router.server import build_router


def test_client_tokens_are_required_unless_the_router_runs_open() -> None:
    with pytest.raises(ValidationError, match="client tokens are required"):
        RouterSettings(model_name=MODEL)
    result = CliRunner().invoke(router_cli, ["--model", "m", "--backend", "http://127.0.0.1:1"])
    assert result.exit_code != 0 and "--allow-anonymous" in result.output
    assert RouterSettings(model_name=MODEL, allow_anonymous=True).allow_anonymous


async def test_anonymous_client_refused_by_default_with_the_openai_client() -> None:
    settings = router_settings(client_tokens=frozenset({"good"}))
    async with engine() as eng, router(local_endpoints(eng.url), settings=settings) as (rt, _):
        anonymous = openai.AsyncOpenAI(base_url=rt.url + "/v1", api_key="wrong", max_retries=0)
        good = openai.AsyncOpenAI(base_url=rt.url + "/v1", api_key="good", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            await anonymous.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
        served = await good.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        await anonymous.close()
        await good.close()
    assert refused.value.response.json()["error"]["type"] == "invalid_request_error"
    assert served.choices[0].finish_reason == "length"


async def test_metrics_live_on_their_own_port() -> None:
    async with (
        router([]) as (rt, _),
        httpx.AsyncClient(timeout=5) as client,
    ):
        on_api = await client.get(rt.url + "/metrics")
        assert rt.metrics_url is not None
        on_metrics = await client.get(rt.metrics_url + "/metrics")
        other = await client.get(rt.metrics_url + "/v1/models")
    assert on_api.status_code == 404 and on_api.json()["error"]["type"] == "invalid_request_error"
    assert on_metrics.status_code == 200 and "weir_router_hosted_spend" in on_metrics.text
    assert other.status_code == 404 and "error" in other.json()


def _spill_policy(url: str) -> RouterPolicy:
    return RouterPolicy.model_validate(
        {"hosted_enabled": True, "max_hosted_share": 1.0, "hosted": hosted_spec(url)}
    )


def test_hosted_base_url_must_be_https_unless_its_host_is_allowed() -> None:
    plain = _spill_policy("http://evil.example")
    with pytest.raises(ConfigError, match=r"hosted\.baseUrl: must be https"):
        build_router(router_settings(allow_insecure_hosted=frozenset()), plain)
    build_router(router_settings(allow_insecure_hosted=frozenset({"evil.example"})), plain)
    build_router(router_settings(allow_insecure_hosted=frozenset()), _spill_policy("https://x.io"))
    assert host_allowed("10.1.2.3", frozenset({"10.0.0.0/8"}))
    assert not host_allowed("11.1.2.3", frozenset({"10.0.0.0/8", "x"}))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.io/v1",
        "https://user:pw@x.io/v1",
        "https://x.io/v1?key=1",
        "https://x.io/v1#frag",
        "https:///v1",
        "https://x.io:99999/v1",
        "https://x .io/v1",
        "file:///etc/passwd",
    ],
)
def test_hosted_base_url_is_a_plain_http_url(url: str) -> None:
    spec = hosted_spec("https://ok.io").model_dump(by_alias=True)
    spec["baseUrl"] = url
    with pytest.raises(ValidationError, match="baseUrl"):
        HostedEndpointSpec.model_validate(spec)


def test_secret_must_opt_in_to_the_endpoint() -> None:
    with pytest.raises(InvalidReferenceError, match=SECRET_OPT_IN):
        check_secret_opt_in(None, "hosted", "key")
    with pytest.raises(InvalidReferenceError, match="does not allow"):
        check_secret_opt_in({SECRET_OPT_IN: "other, hostedx"}, "hosted", "key")
    check_secret_opt_in({SECRET_OPT_IN: "other, hosted"}, "hosted", "key")


async def test_a_client_chosen_request_id_does_not_mark_other_clients_requests() -> None:
    settings = router_settings(client_tokens=frozenset({"alice", "bob"}))
    async with (
        engine() as eng,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(eng.url), settings=settings) as (rt, _),
    ):
        url = rt.url + "/v1/chat/completions"
        for who in ("alice", "bob", "bob"):  # alice picks bob's next id first
            headers = {"Authorization": f"Bearer {who}", "X-Request-Id": "req-1"}
            assert (await client.post(url, json=chat(max_tokens=2), headers=headers)).is_success
        long_key = {"Authorization": "Bearer alice", "Idempotency-Key": "k" * 300}
        refused = await client.post(url, json=chat(max_tokens=2), headers=long_key)
        assert rt.metrics_url is not None
        text = (await client.get(rt.metrics_url + "/metrics")).text
    assert metric(text, "weir_router_duplicate_requests_total") == 1  # bob's own repeat only
    assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["error"]["message"]


def test_dedupe_memory_is_bounded_in_count_and_size() -> None:
    keys = DuplicateKeys(600.0, max_keys=1000)
    for i in range(5000):
        assert not keys.seen_before(b"client", b"k%d" % i + b"x" * 200, float(i) / 1000)
    assert len(keys) <= 1000
    assert keys.seen_before(b"client", b"k4999" + b"x" * 200, 5.0)
    assert not keys.seen_before(b"other", b"k4999" + b"x" * 200, 5.0)
