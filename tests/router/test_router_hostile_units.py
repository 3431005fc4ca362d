"""Pure pieces the hostile-world fixes rest on: SSE dialects, Retry-After, error mapping."""

from __future__ import annotations

import pytest

from weir.router.errors import UpstreamStatusError
from weir.router.forward import _status_error
from weir.router.retry import retry_after_s
from weir.router.sse import StreamScanner

TOKEN = b'data: {"choices":[{"delta":{"content":"a"}}]}'


@pytest.mark.parametrize("nl", [b"\n", b"\r\n", b"\r"])
def test_every_sse_line_end_is_read_and_forwarded_as_lf(nl: bytes) -> None:
    stream = (TOKEN + nl + nl) * 3 + b"data: [DONE]" + nl + nl
    scanner = StreamScanner(strip_usage=False)
    out = b"".join(scanner.feed(stream[i : i + 1], float(i)) for i in range(len(stream)))
    out += scanner.flush(float(len(stream)))
    assert scanner.done and scanner.token_events == 3
    assert out == (TOKEN + b"\n\n") * 3 + b"data: [DONE]\n\n"


def test_keep_alive_comments_are_not_tokens() -> None:
    scanner = StreamScanner(strip_usage=False)
    scanner.feed(b": ping\n\n", 0.0)
    scanner.feed(b":\n\n: keep-alive\n\n", 0.5)
    assert scanner.first_token_at is None
    scanner.feed(TOKEN + b"\n\n: ping\n\n", 1.35)
    scanner.feed(b": ping\n\n", 9.0)
    assert scanner.first_token_at == 1.35 and scanner.last_token_at == 1.35
    assert scanner.token_events == 1


def test_an_error_event_is_cut_and_fails_the_stream() -> None:
    scanner = StreamScanner(strip_usage=False)
    out = scanner.feed(TOKEN + b'\n\ndata: {"error":{"message":"Bearer sk-SECRET"}}\n\n', 1.0)
    assert scanner.failed and b"SECRET" not in out and out == TOKEN + b"\n\n"
    quoted = StreamScanner(strip_usage=False)
    quoted.feed(b'data: {"choices":[{"delta":{"content":"\\"error\\""}}]}\n\n', 1.0)
    assert not quoted.failed  # the word in generated text is not an error event


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 1.0),
        ("7", 7.0),
        ("999999999", 60.0),
        ("-4", 1.0),
        ("inf", 1.0),
        ("1e400", 1.0),
        ("", 1.0),
        ("Thu, 01 Jan 1970 00:00:30 GMT", 1.0),  # in the past (now = 60 s)
        ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),  # 100 s after the epoch: 40 s on
        ("not a date, 99 Foo 20xx", 1.0),
    ],
)
def test_retry_after_is_read_and_clamped(value: str | None, expected: float) -> None:
    assert retry_after_s(value, now_epoch_s=60.0, max_s=60.0) == expected


def test_upstream_error_keeps_status_and_a_safe_type_only() -> None:
    echo = b'{"error":{"message":"you sent Authorization: Bearer sk-SECRET","type":"bad key!"}}'
    error = _status_error(401, echo, [], 60.0)
    assert isinstance(error, UpstreamStatusError)
    assert error.status == 401 and error.error_type == "authentication_error"
    assert "SECRET" not in str(error) and error.headers() == {}
    limited = _status_error(429, b"[[[", [(b"Retry-After", b"86400")], 60.0)
    assert limited.error_type == "rate_limit_exceeded" and limited.headers() == {
        "Retry-After": "60"
    }
    odd = _status_error(299, b"", [], 60.0)
    assert odd.status == 502
