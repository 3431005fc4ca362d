"""The shared usefulness rule: per-token ITL, chunks, reasons."""

from __future__ import annotations

import pytest

from weir.planner.usefulness import Pace, judge_tokens, late_in_chunk

TARGETS = {"ttft_target_s": 1.0, "itl_target_s": 0.05}


def _judge(**kwargs: object) -> tuple[float, float, str]:
    base: dict[str, object] = {
        "completed": "completed",
        "duplicate": False,
        "output_tokens": 100,
        "ttft_s": 0.5,
        "mean_itl_s": 0.02,
        "late_tokens": 0.0,
        "rule": "per_token",
        **TARGETS,
    }
    base.update(kwargs)
    out = judge_tokens(**base)  # type: ignore[arg-type]
    return out.useful_tokens, out.wasted_tokens, out.reason


def test_a_stall_the_mean_hides_costs_tokens_per_token() -> None:
    # 99 gaps at 20 ms and one of 2 s: mean 40 ms (< 50 ms target), one late token
    pace = Pace()
    t = 0.5
    pace.chunk(t, 1, 0.05)
    for _ in range(98):
        t += 0.02
        pace.chunk(t, 1, 0.05)
    t += 2.0
    pace.chunk(t, 1, 0.05)
    mean = (t - 0.5) / 99
    assert mean < 0.05 and pace.tokens == 100 and pace.late_tokens == 1
    assert _judge(rule="mean", mean_itl_s=mean) == (100.0, 0.0, "useful")
    assert _judge(late_tokens=pace.late_tokens, mean_itl_s=mean) == (99.0, 1.0, "late")


def test_chunks_are_judged_as_their_tokens_spread_over_the_gap() -> None:
    assert late_in_chunk(0.16, 4, 0.05) == 0  # four tokens at 40 ms each: on pace
    assert late_in_chunk(0.24, 4, 0.05) == 4  # 60 ms each: all late
    assert late_in_chunk(3.0, 1, 0.05) == 1
    assert late_in_chunk(1.0, 0, 0.05) == 0
    steady, grouped = Pace(), Pace()
    for i in range(40):
        steady.chunk(i * 0.03, 1, 0.05)
    for i in range(10):
        grouped.chunk(i * 0.12, 4, 0.05)
    assert steady.late_tokens == grouped.late_tokens == 0


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"completed": "abandoned"}, "abandoned"),
        ({"completed": "timeout"}, "timeout"),
        ({"duplicate": True}, "duplicate"),
        ({"ttft_s": 1.5}, "late"),
        ({"rule": "mean", "mean_itl_s": 0.06}, "late"),
    ],
)
def test_whole_request_wasted_with_the_first_reason(kwargs: dict[str, object], reason: str) -> None:
    assert _judge(**kwargs) == (0.0, 100.0, reason)


def test_late_tokens_never_exceed_the_tokens_after_the_first() -> None:
    assert _judge(late_tokens=500.0) == (1.0, 99.0, "late")
    assert _judge(late_tokens=-3.0) == (100.0, 0.0, "useful")


def test_non_streamed_answers_are_due_with_their_last_token() -> None:
    # due at 1.0 + 99 x 0.05 = 5.95 s
    assert _judge(streamed=False, ttft_s=5.9)[2] == "useful"
    assert _judge(streamed=False, ttft_s=6.0)[2] == "late"
