"""Request schedules for the closed loop: a real trace, time-warped, with a launch spike.

The trace gives every request its prompt and output length and its gap to
the one before (so its burstiness survives); `warp` replays those gaps
scaled to a base rate and divided by a rate multiplier that follows the
spike's shape (ramp up, hold, ramp down). Pure: no clock, no I/O but the
trace file read by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from weir.sim.traces import Request


@dataclass(frozen=True)
class Spike:
    """A launch spike: the rate climbs to `factor` x base over `ramp_s`, holds, comes back."""

    start_s: float
    factor: float = 5.0
    ramp_s: float = 30.0
    hold_s: float = 90.0

    def multiplier(self, t: float) -> float:
        rise = (t - self.start_s) / self.ramp_s
        fall = (self.start_s + self.ramp_s + self.hold_s + self.ramp_s - t) / self.ramp_s
        shape = max(0.0, min(1.0, rise, fall))
        return 1.0 + (self.factor - 1.0) * shape

    @property
    def end_s(self) -> float:
        return self.start_s + 2 * self.ramp_s + self.hold_s


@dataclass(frozen=True)
class Shaping:
    """How a trace becomes a schedule; token caps keep the streams this machine can carry."""

    base_rps: float
    duration_s: float
    spike: Spike | None = None
    max_input_tokens: int = 2048
    max_output_tokens: int = 256


def warp(trace: Sequence[Request], shaping: Shaping) -> list[Request]:
    """The trace's requests, cycled if needed, at `base_rps` times the spike's multiplier."""
    if len(trace) < 2:
        raise ValueError("a schedule needs a trace of at least two requests")
    ordered = sorted(trace, key=lambda r: r.arrival_s)
    span = ordered[-1].arrival_s - ordered[0].arrival_s
    mean_gap = span / (len(ordered) - 1) if span > 0 else 1.0
    scale = 1.0 / (shaping.base_rps * mean_gap)
    out: list[Request] = []
    t, i = 0.0, 0
    while True:
        current, following = ordered[i % len(ordered)], ordered[(i + 1) % len(ordered)]
        gap = following.arrival_s - current.arrival_s if following is not ordered[0] else mean_gap
        multiplier = shaping.spike.multiplier(t) if shaping.spike else 1.0
        t += max(0.0, gap) * scale / multiplier
        if t >= shaping.duration_s:
            return out
        out.append(
            Request(
                t,
                max(1, min(following.input_tokens, shaping.max_input_tokens)),
                max(1, min(following.output_tokens, shaping.max_output_tokens)),
            )
        )
        i += 1
