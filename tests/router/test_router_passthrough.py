"""Pass-through over real sockets: byte-exact streams and bodies, usage strip, accounting."""

from __future__ import annotations

import httpx

from router.helpers import MODEL, chat, engine, local_endpoints, metric, router, scrape, sse_events


async def test_stream_is_byte_exact_with_usage_asked() -> None:
    async with engine() as eng, httpx.AsyncClient(timeout=10) as client:
        body = chat(stream=True, stream_options={"include_usage": True})
        direct = await client.post(eng.url + "/v1/chat/completions", json=body)
        async with router(local_endpoints(eng.url)) as (rt, _):
            via = await client.post(rt.url + "/v1/chat/completions", json=body)
            assert via.status_code == 200
            assert via.headers["content-type"].startswith("text/event-stream")
            events, expected = sse_events(via.content), sse_events(direct.content)
            # ids and timestamps differ per request; the shape and text must not
            assert len(events) == len(expected)
            assert events[-1] == "[DONE]"
            assert events[-2]["usage"]["completion_tokens"] == 8
            text = await scrape(client, rt.url)
    assert metric(text, "weir_router_tokens_total", backend="local", kind="output") == 8
    assert metric(text, "weir_router_requests_total", backend="local", outcome="completed") == 1
