"""Idempotency keys seen recently, bounded in size and scoped to the client that chose them.

A request that repeats an `Idempotency-Key` (or `X-Request-Id`) within the
window is a retry: its tokens are counted as duplicate waste. The keys are
chosen by clients, so nothing about them is trusted: a key is kept only as
a 16-byte digest of (client scope, key), keys longer than `MAX_KEY_BYTES`
are refused (400) before anything is stored, at most `max_keys` digests
are kept (oldest dropped first), and the scope (the client's bearer token,
or its address when the router runs open) means one client's ids never
mark another client's requests as duplicates.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

MAX_KEY_BYTES = 256


class DuplicateKeys:
    """Recent (scope, key) digests; a second sighting within the window is a duplicate."""

    def __init__(self, window_s: float, max_keys: int = 100_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen_before(self, scope: bytes, key: bytes | None, now_s: float) -> bool:
        """Record the key (first sighting) or report it as a repeat."""
        if key is None or self.window_s <= 0:
            return False
        digest = hashlib.blake2b(b"%d:%s%s" % (len(scope), scope, key), digest_size=16).digest()
        seen = self._seen
        horizon = now_s - self.window_s
        while seen:
            oldest, at = next(iter(seen.items()))
            if at > horizon and len(seen) < self.max_keys:
                break
            del seen[oldest]
        if digest in seen:
            return True
        seen[digest] = now_s
        return False
