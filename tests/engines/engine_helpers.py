"""Helpers of the engine tests: SSE parsing and Prometheus text lookups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx


async def read_sse(response: httpx.Response) -> list[dict[str, Any] | str]:
    """Events of an SSE body: parsed JSON objects, and the string "[DONE]"."""
    events: list[dict[str, Any] | str] = []
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        payload = line[len("data: ") :].strip()
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0.0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{", 1)[0]
        if metric != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `predicate` every 5 ms until true; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
