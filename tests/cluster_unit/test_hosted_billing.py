"""The hosted stand-in bills as a provider does: `n` completions and the tools' text.

Real HTTP on loopback with the official client, streamed and whole: the
budget-cap scenario's traffic carries `n` and `tools`, so a stand-in that
billed one choice of the prompt alone would let it pass on a fraction of
what a provider charges.
"""

from __future__ import annotations

import json

from openai import OpenAI

from weir_lab.closedloop.hosted import HostedLatency, HostedStandIn

KEY = "stand-in-key"
FAST = HostedLatency(0.01, 0.02, 0.001, 0.002)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "x" * 2000,
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def _usage(client: OpenAI, stream: bool, **extra: object) -> tuple[int, int]:
    asked: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 12,
        "extra_body": {"ignore_eos": True},
        **extra,
    }
    if stream:
        chunks = list(
            client.chat.completions.create(
                stream=True,
                stream_options={"include_usage": True},
                **asked,  # type: ignore[call-overload]
            )
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(**asked).usage  # type: ignore[call-overload]
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens


def test_the_stand_in_bills_every_choice_and_the_tools() -> None:
    with HostedStandIn("127.0.0.1", model="m", api_key=KEY, latency=FAST) as standin:
        client = OpenAI(base_url=f"{standin.url}/v1", api_key=KEY)
        for stream in (True, False):
            prompt, completion = _usage(client, stream)
            assert completion == 12
            _, four = _usage(client, stream, n=4)
            assert four == 4 * completion
            with_tools, _ = _usage(client, stream, tools=TOOLS)
            rendered = len(json.dumps(TOOLS, separators=(",", ":")).encode())
            assert with_tools == prompt + rendered
