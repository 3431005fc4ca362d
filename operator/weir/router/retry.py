"""Reading an upstream's Retry-After, which nothing obliges to be sane.

RFC 9110 allows a number of seconds or an HTTP-date. A hosted endpoint may
send either, or a negative number, a float, garbage, or 999999999 (which,
taken at its word, would switch spill off until the router restarts). The
router only ever uses it as a hint: it is clamped to [1 s, `max_s`], and a
value it cannot read counts as 1 s.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC

DEFAULT_S = 1.0


def retry_after_s(value: str | None, *, now_epoch_s: float, max_s: float) -> float:
    """Seconds to wait, from a Retry-After header value, within [1, max_s]."""
    if value is None:
        return DEFAULT_S
    text = value.strip()[:64]
    seconds: float
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return DEFAULT_S
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now_epoch_s
    if not math.isfinite(seconds):
        return DEFAULT_S
    return min(max(seconds, DEFAULT_S), max(max_s, DEFAULT_S))


def header_value(seconds: float) -> str:
    """The Retry-After the router itself sends: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
