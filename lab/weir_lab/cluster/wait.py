"""Bounded polling: wait until a condition holds, or fail saying what was awaited.

Everything the local cluster does is asynchronous (a pod is scheduled, then
marked running, then listed in an EndpointSlice), so callers wait on the
condition they need, never for a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """The condition did not hold within the deadline."""


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout_s: float,
    interval_s: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> T:
    """Call `probe` until it returns a truthy value, at most `timeout_s` seconds.

    `pause` is the interval between two probes of a bounded poll, not a guess
    at how long something takes; tests inject a fake clock and pause.
    """
    deadline = clock() + timeout_s
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if clock() >= deadline:
            raise WaitTimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        pause(interval_s)
