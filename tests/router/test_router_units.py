"""Pure parts of the router: SSE scanning, judging tokens, duplicates, breaker, budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weir.planner.usefulness import Pace
from weir.router.accounting import DuplicateTracker, judge
from weir.router.breaker import CircuitBreaker
from weir.router.budget import HostedBudget, Reservation, ShareWindow
from weir.router.request import parse_request
from weir.router.sse import StreamScanner, Usage
from weir_lab.standin import usage_event

OPEN = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
TOKEN = b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n'
DONE = b"data: [DONE]\n\n"


@pytest.mark.parametrize("cut", [1, 7, 40, 100, 131])
@pytest.mark.parametrize("strip", [True, False])
def test_scanner_same_result_however_the_stream_is_split(cut: int, strip: bool) -> None:
    stream = OPEN + TOKEN * 3 + usage_event(5, 3) + DONE
    scanner = StreamScanner(strip_usage=strip)
    out = b""
    for at in range(0, len(stream), cut):
        out += scanner.feed(stream[at : at + cut], float(at))
    out += scanner.flush()
    assert out == (OPEN + TOKEN * 3 + DONE if strip else stream)
    assert scanner.usage == Usage(5, 3, 0, True)
    assert scanner.token_events == 3
    assert scanner.done
    assert scanner.first_token_at is not None and scanner.first_token_at >= len(OPEN) - cut


def test_scanner_counts_tokens_when_usage_is_missing() -> None:
    scanner = StreamScanner(strip_usage=True)
    out = scanner.feed(TOKEN * 4 + TOKEN[:10], 1.0)
    assert out == TOKEN * 4
    assert scanner.token_events == 4 and scanner.usage is None and not scanner.done
    assert scanner.first_token_at == 1.0 and scanner.last_token_at == 1.0


def test_judge_useful_late_and_reasons() -> None:
    base = {
        "started_at": 0.0,
        "usage": Usage(10, 5, 2, True),
        "counted_tokens": 0,
        "prompt_bound": 99,
        "ttft_target_s": 0.5,
        "itl_target_s": 0.1,
    }
    good = judge(
        outcome="completed", duplicate=False, first_token_at=0.2, last_token_at=0.6, **base
    )  # type: ignore[arg-type]
    assert good.useful and good.itl_s == pytest.approx(0.1) and good.cached_tokens == 2
    late = judge(
        outcome="completed", duplicate=False, first_token_at=0.9, last_token_at=1.0, **base
    )  # type: ignore[arg-type]
    assert late.waste == "late"
    slow = judge(
        outcome="completed", duplicate=False, first_token_at=0.1, last_token_at=2.0, **base
    )  # type: ignore[arg-type]
    assert slow.waste == "late"
    dup = judge(outcome="completed", duplicate=True, first_token_at=0.1, last_token_at=0.2, **base)  # type: ignore[arg-type]
    assert dup.waste == "duplicate"
    cut = judge(
        outcome="cancelled",
        duplicate=False,
        first_token_at=0.1,
        last_token_at=0.2,
        **{**base, "usage": None, "counted_tokens": 3},
    )  # type: ignore[arg-type]
    assert cut.waste == "cancelled" and cut.output_tokens == 3 and cut.input_tokens == 99


def test_judge_non_streaming_is_due_when_its_last_token_would_be() -> None:
    usage = Usage(10, 11, 0, True)  # due at 0.5 + 10 x 0.1 = 1.5 s
    kwargs = {
        "outcome": "completed",
        "duplicate": False,
        "started_at": 0.0,
        "usage": usage,
        "counted_tokens": 0,
        "prompt_bound": 0,
        "ttft_target_s": 0.5,
        "itl_target_s": 0.1,
        "streamed": False,
    }
    assert judge(first_token_at=1.4, last_token_at=1.4, **kwargs).useful  # type: ignore[arg-type]
    late = judge(first_token_at=1.6, last_token_at=1.6, **kwargs)  # type: ignore[arg-type]
    assert late.waste == "late"


def test_judge_per_token_keeps_the_tokens_that_came_on_pace() -> None:
    """With late tokens counted per chunk (a `Pace`), a stall costs its tokens only."""
    pace = Pace()
    pace.chunk(0.2, 1, 0.1)
    pace.chunk(0.25, 2, 0.1)  # two tokens 25 ms apart: on pace
    pace.chunk(1.25, 1, 0.1)  # a one-second stall: one late token
    pace.chunk(1.3, 1, 0.1)
    kwargs = {
        "outcome": "completed",
        "duplicate": False,
        "started_at": 0.0,
        "first_token_at": 0.2,
        "last_token_at": 1.3,
        "usage": Usage(10, 5, 0, True),
        "counted_tokens": 5,
        "prompt_bound": 0,
        "ttft_target_s": 0.5,
        "itl_target_s": 0.1,
    }
    by_mean = judge(**kwargs)  # type: ignore[arg-type]
    assert by_mean.waste == "late" and by_mean.useful_tokens == 0  # mean 275 ms
    per_token = judge(late_tokens=pace.late_tokens, **kwargs)  # type: ignore[arg-type]
    assert pace.late_tokens == 1 and pace.tokens == 5
    assert per_token.waste == "late" and per_token.useful_tokens == 4
    on_pace = judge(late_tokens=0, **kwargs)  # type: ignore[arg-type]
    assert on_pace.useful and on_pace.useful_tokens == 5


def test_duplicate_tracker_window() -> None:
    dupes = DuplicateTracker(window_s=10)
    assert not dupes.seen_before("a", 0.0)
    assert dupes.seen_before("a", 5.0)
    assert not dupes.seen_before("a", 11.0)  # the first sighting expired
    assert not dupes.seen_before(None, 11.0)


def test_breaker_cycle() -> None:
    breaker = CircuitBreaker(failures=2, open_s=5)
    breaker.failure(0.0)
    assert breaker.state(0.0) == "closed"
    breaker.failure(1.0)
    assert breaker.state(2.0) == "open" and not breaker.allow(2.0)
    assert breaker.retry_after_s(2.0) == 4.0
    assert breaker.allow(6.0) and not breaker.allow(6.0)  # one probe at a time
    breaker.failure(6.5)  # the probe failed: open again
    assert breaker.state(7.0) == "open"
    assert breaker.allow(12.0)
    breaker.success()
    assert breaker.state(12.0) == "closed"


def test_share_window() -> None:
    share = ShareWindow(window_s=10)
    share.record(0.0, hosted=False)
    share.record(1.0, hosted=True)
    assert share.share(2.0) == 0.5
    assert share.share(10.5) == 1.0  # the local one left the window


def test_local_body_splices_usage_and_hosted_body_maps_model() -> None:
    req = parse_request(b'{"messages":[{"role":"user","content":"hi"}],"stream":true} ', chat=True)
    assert req.local_body("m") == (
        b'{"messages":[{"role":"user","content":"hi"}],"stream":true'
        b',"stream_options":{"include_usage":true}}'
    )
    hosted = parse_request(req.hosted_body("big", 64), chat=True).parsed
    assert hosted["model"] == "big" and hosted["max_tokens"] == 64
    assert hosted["stream_options"] == {"include_usage": True}


_workload = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0),  # gap to the previous request, s
        st.floats(min_value=0.0, max_value=0.05),  # reserved (worst case) $
        st.floats(min_value=0.0, max_value=1.0),  # actual price as a fraction of it
        st.floats(min_value=0.0, max_value=120.0),  # duration until it is settled, s
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.floats(min_value=0.0, max_value=20.0),
    window=st.sampled_from([10.0, 60.0, 300.0]),
    workload=_workload,
)
def test_hosted_spend_never_exceeds_the_cap(
    cap: float, window: float, workload: list[tuple[float, float, float, float]]
) -> None:
    """Over random workloads, the spend admitted in any window stays under cap x window / 1 h."""
    budget = HostedBudget(cap, window)
    now = 0.0
    admitted: list[tuple[float, float]] = []  # (admission time, dollars finally charged)
    pending: list[tuple[float, Reservation, float]] = []
    for gap, worst, fraction, duration in workload:
        now += gap
        for _, held, price in [p for p in pending if p[0] <= now]:
            budget.settle(held, price)
        pending = [p for p in pending if p[0] > now]
        entry = budget.reserve(now, worst)
        if entry is not None:
            price = worst * fraction
            pending.append((now + duration, entry, price))
            admitted.append((now, price))
        assert budget.in_window(now) <= budget.window_limit + 1e-12
    for start, _ in admitted:
        spent = sum(p for t, p in admitted if start <= t < start + window)
        assert spent <= cap * window / 3600 + 1e-9


def test_scanner_counts_late_tokens_per_read_when_asked() -> None:
    """With an ITL target the scanner keeps a `Pace`: a token after a gap longer than the
    target is late; the role-only opening and the first token have no gap to judge."""
    scanner = StreamScanner(strip_usage=True, itl_target_s=0.1)
    for at, event in ((0.1, OPEN), (0.2, TOKEN), (0.25, TOKEN), (1.25, TOKEN), (1.3, TOKEN)):
        scanner.feed(event, at)
    scanner.feed(DONE, 1.31)
    assert scanner.token_events == 4 and scanner.late_tokens == 1
    assert StreamScanner(strip_usage=True).late_tokens is None  # not asked: not counted
