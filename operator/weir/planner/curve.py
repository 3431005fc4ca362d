"""A profile's measured latencies as a function of running batch and prompt length.

One reading of a profile for everyone who reads it: the planner, for the speed
an engine shows against its profile (`weir.planner.learn`), and the emulated
engine, for the latencies it draws (`weir.refengine.timing`). Repeated
measurements of one (input length, concurrency) are averaged; a metric is
linear in concurrency, then in input length, and clamped at the ends.
Grouping and sorting the points is the slow part, so it is done once per
profile (`ProfileCurve.of`, or `profile_curve`, cached); a look-up is then two
bisections.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import mean

from weir.api.profile import EngineProfile, ProfilePoint

Values = tuple[float, ...]  # one per metric, in the curve's order


def _lerp(a: Values, b: Values, w: float) -> Values:
    return tuple(p + (q - p) * w for p, q in zip(a, b, strict=True))


def _bracket(xs: Sequence[int], x: float) -> tuple[int, int, float]:
    """The points on either side of x and x's weight towards the upper one (the same
    point twice beyond either end: clamped)."""
    if x <= xs[0]:
        return 0, 0, 0.0
    if x >= xs[-1]:
        return len(xs) - 1, len(xs) - 1, 0.0
    i = bisect.bisect_right(xs, x)
    return i - 1, i, (x - xs[i - 1]) / (xs[i] - xs[i - 1])


@dataclass(frozen=True)
class _Row:
    """The points of one input length: concurrencies ascending, the metrics' means at each."""

    concurrency: tuple[int, ...]
    values: tuple[Values, ...]

    def at(self, batch: float) -> Values:
        lo, hi, w = _bracket(self.concurrency, batch)
        return self.values[lo] if lo == hi else _lerp(self.values[lo], self.values[hi], w)


@dataclass(frozen=True)
class ProfileCurve:
    """Some of a profile's metrics (`ProfilePoint` field names) over batch and input length."""

    metrics: tuple[str, ...]
    input_tokens: tuple[int, ...]  # ascending
    rows: tuple[_Row, ...]  # one per input length

    @classmethod
    def of(cls, points: Sequence[ProfilePoint], metrics: tuple[str, ...]) -> ProfileCurve:
        unknown = set(metrics) - set(ProfilePoint.model_fields)
        if unknown:
            raise ValueError(f"not a profile metric: {', '.join(sorted(unknown))}")
        grouped: dict[int, dict[int, list[ProfilePoint]]] = {}
        for p in points:
            grouped.setdefault(p.input_tokens, {}).setdefault(p.concurrency, []).append(p)
        inputs = tuple(sorted(grouped))
        rows = []
        for i in inputs:
            cs = tuple(sorted(grouped[i]))
            values = tuple(
                tuple(mean(float(getattr(p, m)) for p in grouped[i][c]) for m in metrics)
                for c in cs
            )
            rows.append(_Row(cs, values))
        return cls(metrics, inputs, tuple(rows))

    def at(self, batch: float, input_tokens: float) -> Values:
        """The metrics at this running batch and prompt length."""
        lo, hi, w = _bracket(self.input_tokens, input_tokens)
        below = self.rows[lo].at(batch)
        return below if lo == hi else _lerp(below, self.rows[hi].at(batch), w)


class _Same:
    """A profile as a cache key by identity: hashing a frozen profile by value reads
    all its points (tens of microseconds, about what building its curve saves), and
    the key holds the profile, so its id is not reused while the entry lives."""

    __slots__ = ("profile",)

    def __init__(self, profile: EngineProfile) -> None:
        self.profile = profile

    def __hash__(self) -> int:
        return id(self.profile)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.profile is self.profile


@functools.lru_cache(maxsize=64)
def _cached(key: _Same, metrics: tuple[str, ...]) -> ProfileCurve:
    return ProfileCurve.of(key.profile.points, metrics)


def profile_curve(profile: EngineProfile, metrics: tuple[str, ...]) -> ProfileCurve:
    """The curve of `profile`'s `metrics`, built once per profile object (a few kept)."""
    return _cached(_Same(profile), metrics)
