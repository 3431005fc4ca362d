"""Workloads and checks shared by the scenario tests (generated, never the shared traces)."""

from __future__ import annotations

import time
from collections.abc import Callable

from weir.sim.generate import generate
from weir.sim.traces import Request
from weir_lab.closedloop.harness import Loop
from weir_lab.closedloop.schedule import Shaping, Spike, warp
from weir_lab.closedloop.traffic import Replay


def workload(
    base_rps: float,
    duration_s: float,
    spike: Spike | None = None,
    seed: int = 1,
    max_output_tokens: int = 160,
) -> list[Request]:
    """Generated steady traffic (log-normal prompts ~1000, outputs ~150 tokens), warped to
    `base_rps` with an optional spike."""
    base = generate("steady", 600.0, 5.0, seed)
    shaping = Shaping(
        base_rps, duration_s, spike, max_input_tokens=2048, max_output_tokens=max_output_tokens
    )
    return warp(base, shaping)


def watch(loop: Loop, seconds: float, every_s: float, probe: Callable[[Loop], object]) -> list:
    """Call `probe` every `every_s` for `seconds`; the observations, in order."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.append(probe(loop))
        time.sleep(every_s)  # a sampling period, not a wait for a condition
    return seen


def total_desired(loop: Loop) -> int:
    return sum(loop.desired_engines().values())


def assert_none_failed(result: Replay) -> None:
    """Every request was sent and none failed."""
    assert not result.failed(), result.failed()[:3]
    assert result.dropped == 0, f"the client never sent {result.dropped} request(s)"
