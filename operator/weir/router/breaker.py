"""Circuit breaker on the hosted endpoint: stop spilling to it while it fails.

Gateways fall back only after errors and timeouts; when the fallback itself
is down, every spilled request pays that timeout again. After
`failures` consecutive failures the breaker opens: the admission policy sees
the hosted endpoint as unavailable (like a 429) and traffic is served or
queued locally. After `open_s` one probe request is let through (half-open);
its success closes the breaker, its failure opens it again. The clock is an
argument, so tests need no sleeps.
"""

from __future__ import annotations

from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe."""

    def __init__(self, failures: int, open_s: float) -> None:
        self.threshold = failures
        self.open_s = open_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def state(self, now_s: float) -> State:
        """Where the breaker is now."""
        if self._opened_at is None:
            return "closed"
        if now_s - self._opened_at >= self.open_s:
            return "half_open"
        return "open"

    def allow(self, now_s: float) -> bool:
        """May a request go to the endpoint now? (Takes the probe when half-open.)"""
        state = self.state(now_s)
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def available(self, now_s: float) -> bool:
        """Would `allow` say yes, without taking the probe?"""
        state = self.state(now_s)
        return state == "closed" or (state == "half_open" and not self._probing)

    def retry_after_s(self, now_s: float) -> float:
        """Seconds until the next probe may go."""
        if self._opened_at is None:
            return 0.0
        return max(self._opened_at + self.open_s - now_s, 0.0)

    def success(self) -> None:
        """The endpoint answered: close."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self, now_s: float) -> None:
        """The endpoint failed (connect error, timeout, 5xx)."""
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = now_s
            self._probing = False
