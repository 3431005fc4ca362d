"""Hosted spend never exceeds the cap, whatever the sequence of request shapes (hypothesis).

The biller is the most an honest provider could charge (`weir_lab.hostile.max_bill`: a
token per byte of the body it received, every token of every choice). On 0e4ffea the
reservation counted only message contents and max_tokens, so `n`, tools and the rest of
the body went unpaid for and both properties failed (12 requests with n=8 and 80 KB of
tools spent 4.4x the window cap).

The first property drives admission and the budget directly with a fake clock
(thousands of sequences, requests overlapping in time); the second sends a few dozen
sequences through a real router to the hostile stand-in with the openai client.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import openai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.helpers import MODEL, hosted_spec, router, router_settings
from weir.router.backends import BackendSet
from weir.router.breaker import CircuitBreaker
from weir.router.budget import Reservation
from weir.router.config import RouterPolicy
from weir.router.cost import choices, hosted_input_bound
from weir.router.errors import ClientRequestError
from weir.router.metrics import RouterMetrics
from weir.router.request import ClientRequest, parse_request
from weir.router.spill import Request, Spill
from weir_lab.hostile import HostileSettings, max_bill, started_hostile

WINDOW_S = 60.0
SPEC = hosted_spec("https://hosted.invalid", input=3.0, cached=1.5, output=15.0)

# long texts drawn cheaply: a short (any unicode) piece repeated up to 500 times
_text = st.builds(lambda s, k: s * k, st.text(max_size=40), st.integers(1, 500))
_tool = st.builds(
    lambda name, desc, props: {
        "type": "function",
        "function": {"name": name, "description": desc, "parameters": props},
    },
    st.text(alphabet="abcdef_", min_size=1, max_size=20),
    _text,
    st.dictionaries(st.text(max_size=10), st.just({"type": "string"}), max_size=5),
)
_limit = st.none() | st.integers(1, 4096)
_extra = st.fixed_dictionaries(
    {},
    optional={
        "n": st.integers(1, 16),
        "tools": st.lists(_tool, max_size=12),
        "response_format": st.just(
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        ),
        "stop": st.lists(st.text(max_size=20), max_size=4),
        "stream": st.booleans(),
        "max_completion_tokens": st.integers(1, 4096),
        "ignore_eos": st.booleans(),
        "service_tier": st.just("priority"),
        "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=64), max_size=4),
    },
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]), "content": _text},
    optional={"name": st.text(max_size=20)},
)
_chat = st.builds(
    lambda messages, max_tokens, extra: {
        "model": MODEL,
        "messages": messages,
        **({"max_tokens": max_tokens} if max_tokens else {}),
        **extra,
    },
    st.lists(_message, min_size=1, max_size=6),
    _limit,
    _extra,
)
_completion = st.builds(
    lambda prompt, max_tokens, n, best_of, echo: {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "n": n,
        "best_of": best_of,
        "echo": echo,
    },
    st.one_of(_text, st.lists(_text, max_size=4)),
    st.integers(1, 2048),
    st.integers(1, 8),
    st.integers(1, 8),
    st.booleans(),
)
# (body, chat, seconds until the next request, seconds the request takes)
_step = st.tuples(
    st.one_of(_chat.map(lambda b: (b, True)), _completion.map(lambda b: (b, False))),
    st.floats(0.0, 20.0),
    st.floats(0.0, 120.0),
)


def _policy(cap: float) -> RouterPolicy:
    return RouterPolicy.model_validate(
        {
            "default_concurrency_limit": 0,
            "hosted_enabled": True,
            "max_hosted_share": 1.0,
            "max_hosted_dollars_per_hour": cap,
            "hosted": SPEC,
            "max_waiting": 0,
            "hosted_default_max_tokens": 512,
        }
    )


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _shape(request: ClientRequest) -> Request:
    """What the router's proxy derives for admission (Router._shape)."""
    bound = hosted_input_bound(request.parsed, chat=request.chat)
    return Request(
        request.prefill_estimate,
        request.prompt_bound,
        request.max_tokens,
        choices(request.parsed),
        bound,
    )


def _windows_hold(spends: list[tuple[float, float]], limit: float) -> bool:
    for i, (start, _) in enumerate(spends):
        in_window = sum(d for t, d in spends[i:] if t < start + WINDOW_S)
        if in_window > limit * (1 + 1e-9) + 1e-12:
            return False
    return True


@settings(
    max_examples=int(os.environ.get("WEIR_SPEND_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=st.lists(_step, min_size=1, max_size=25), cap=st.floats(0.01, 50.0))
def test_hosted_spend_never_exceeds_the_cap(
    steps: list[tuple[tuple[dict[str, Any], bool], float, float]], cap: float
) -> None:
    clock = _Clock()
    policy = _policy(cap)
    spill = Spill(
        BackendSet(),
        RouterMetrics(),
        policy,
        breaker=CircuitBreaker(5, 10.0),
        share_window_s=60.0,
        budget_window_s=WINDOW_S,
        clock=clock,
    )
    in_flight: list[tuple[float, Reservation, float]] = []
    spends: list[tuple[float, float]] = []
    for (body, chat), gap, duration in steps:
        clock.now += gap
        for item in [f for f in in_flight if f[0] <= clock.now]:
            spill.budget.settle(item[1], item[2])
            in_flight.remove(item)
        try:
            request = parse_request(json.dumps(body).encode(), chat=chat)
        except ClientRequestError:
            continue
        decision = spill.decide(_shape(request), exclude=None, allow_hosted=True)
        if decision.route != "hosted":
            continue
        assert decision.reservation is not None
        sent = request.hosted_body(SPEC.model, spill.hosted_max_tokens(_shape(request)))
        price = SPEC.request_dollars(*_bill(sent))
        assert price <= decision.reservation.dollars + 1e-12  # the reservation is a true bound
        spends.append((clock.now, price))
        in_flight.append((clock.now + duration, decision.reservation, price))
    assert _windows_hold(spends, spill.budget.window_limit)


def _bill(body: bytes) -> tuple[int, int, int]:
    prompt, completion = max_bill(body)
    if json.loads(body).get("echo") is True:
        completion += prompt  # the prompt comes back as output too
    return prompt, 0, completion


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(_chat, min_size=1, max_size=8),
    cap=st.floats(0.5, 20.0),
)
def test_hosted_spend_through_a_real_router_stays_under_the_cap(
    bodies: list[dict[str, Any]], cap: float
) -> None:
    spent, limit = asyncio.run(_through_router(bodies, cap))
    assert spent <= limit * (1 + 1e-9)


async def _through_router(bodies: list[dict[str, Any]], cap: float) -> tuple[float, float]:
    async with started_hostile(HostileSettings(bill="max")) as hosted:
        policy = _policy(cap).model_copy(update={"hosted": hosted_spec(hosted.url, **_PRICES)})
        async with router([], policy, settings=router_settings(hosted_key="k")) as (rt, _):
            client = openai.AsyncOpenAI(base_url=rt.url + "/v1", api_key="x", max_retries=0)
            for body in bodies:
                extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
                stream = bool(extra.pop("stream", False))
                try:
                    made = await client.chat.completions.create(
                        model=MODEL, messages=body["messages"], stream=stream, extra_body=extra
                    )
                    if stream:
                        async for _ in made:  # type: ignore[union-attr]
                            pass
                except openai.APIError:
                    pass  # refused (cap, n over the limit, ...) or failed: billed nothing
            await client.close()
            limit = rt.router.spill.budget.window_limit
    spec = hosted_spec(hosted.url, **_PRICES)
    return sum(spec.request_dollars(*_bill(b)) for b in hosted.stats.bodies), limit


_PRICES = {"input": 3.0, "cached": 1.5, "output": 15.0}
