"""Hosted spend and share: the hard limits on spill, kept as pure, clocked values.

The planner's admission policy looks at the recent hosted $/hour and share;
that alone cannot hold a hard cap, because a request's price is known only
after its last token. So each hosted request first *reserves* its worst case
(prompt bound x input price + max_tokens x output price) in a rolling window,
and when it ends the reservation shrinks to what usage says it cost. Dollars
in the window are counted at admission time, so while every bill stays
within its reservation (what `weir.router.cost` bounds) the spend of any
window of `window_s` seconds stays at or under cap x window_s / 3600, and
therefore of any hour under the cap (property-tested in tests/router). A
bill over its reservation (an upstream that ignored max_tokens) is charged
to the window in full: the window goes over its limit once and refuses
hosted requests until that spend has aged out. No I/O and no clock inside: time is an
argument, as in the planner.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SECONDS_PER_HOUR = 3600.0


@dataclass(slots=True, eq=False)
class Reservation:
    """Dollars held for one hosted request, shrunk to its real price when it ends."""

    at_s: float
    dollars: float
    settled: bool = False
    expired: bool = False


class HostedBudget:
    """Rolling-window dollar budget: cap_dollars_per_hour x window_s / 3600 per window."""

    def __init__(self, cap_dollars_per_hour: float, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.cap_dollars_per_hour = max(cap_dollars_per_hour, 0.0)
        self._entries: deque[Reservation] = deque()
        self._in_window = 0.0
        self.spent_total = 0.0

    @property
    def window_limit(self) -> float:
        """Dollars allowed in one window."""
        return self.cap_dollars_per_hour * self.window_s / SECONDS_PER_HOUR

    def set_cap(self, cap_dollars_per_hour: float) -> None:
        """A new plan's cap; reservations already made stay counted."""
        self.cap_dollars_per_hour = max(cap_dollars_per_hour, 0.0)

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self.window_s
        entries = self._entries
        while entries and entries[0].at_s <= horizon:
            entry = entries.popleft()
            entry.expired = True
            self._in_window -= entry.dollars
        if not entries:
            self._in_window = 0.0  # no float drift across idle periods

    def in_window(self, now_s: float) -> float:
        """Dollars reserved or spent by requests admitted in the last window."""
        self._expire(now_s)
        return max(self._in_window, 0.0)

    def dollars_per_hour(self, now_s: float) -> float:
        """Recent hosted spend rate, as the admission policy wants it."""
        return self.in_window(now_s) * SECONDS_PER_HOUR / self.window_s

    def retry_after_s(self, now_s: float, dollars: float) -> float:
        """How long until `dollars` would fit (the oldest reservations expire)."""
        self._expire(now_s)
        free = self.window_limit - self._in_window
        for entry in self._entries:
            if free >= dollars:
                break
            free += entry.dollars
            if free >= dollars:
                return max(entry.at_s + self.window_s - now_s, 0.0)
        return 0.0 if free >= dollars else self.window_s

    def reserve(self, now_s: float, dollars: float) -> Reservation | None:
        """Hold `dollars` for a request, or None when the window has no room."""
        if dollars < 0:
            raise ValueError("dollars must be >= 0")
        self._expire(now_s)
        if self._in_window + dollars > self.window_limit:
            return None
        entry = Reservation(now_s, dollars)
        self._entries.append(entry)
        self._in_window += dollars
        return entry

    def settle(self, entry: Reservation, actual_dollars: float) -> float:
        """The request ended: its real price replaces the reservation; returns what counts.

        An upstream that bills more than the reservation (it ignored max_tokens)
        is charged in full, to `spent_total` and to the window; the caller
        reports the overrun.
        """
        if entry.settled:
            return 0.0
        entry.settled = True
        kept = max(actual_dollars, 0.0)
        if not entry.expired:
            self._in_window -= entry.dollars - kept
        entry.dollars = kept
        self.spent_total += max(actual_dollars, 0.0)
        return kept


class ShareWindow:
    """Fraction of recently admitted requests that went hosted (sliding window)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, bool]] = deque()
        self._hosted = 0

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self.window_s
        events = self._events
        while events and events[0][0] <= horizon:
            if events.popleft()[1]:
                self._hosted -= 1

    def record(self, now_s: float, *, hosted: bool) -> None:
        """One admitted request (local or hosted)."""
        self._expire(now_s)
        self._events.append((now_s, hosted))
        if hosted:
            self._hosted += 1

    def share(self, now_s: float, *, extra_hosted: int = 0) -> float:
        """Hosted share if `extra_hosted` more requests went hosted now."""
        self._expire(now_s)
        total = len(self._events) + extra_hosted
        return (self._hosted + extra_hosted) / total if total else 0.0
