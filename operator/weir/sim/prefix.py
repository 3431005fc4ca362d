"""The fleet's prefix cache, approximated as one shared LRU of prompt blocks.

A prefix-aware router sends a request where its prompt's leading blocks are
already cached, so the fleet behaves roughly like one cache holding the
scenario's `prefix_cache_tokens`: a request's hits are the leading blocks
seen before, its other blocks are prefilled.
"""

from __future__ import annotations

from collections import OrderedDict

from weir.sim.hosted import BLOCK_TOKENS
from weir.sim.traces import Request


class FleetCache:
    """One LRU of 512-token blocks."""

    def __init__(self, tokens: int) -> None:
        self.blocks = tokens // BLOCK_TOKENS
        self.lru: OrderedDict[int, None] = OrderedDict()

    def hits(self, request: Request) -> int:
        """Cached prompt tokens of `request` (at least one token is always prefilled)."""
        if not request.hash_ids:
            return 0
        hits = 0
        for block in request.hash_ids:
            if block not in self.lru:
                break
            hits += 1
        for block in request.hash_ids:
            self.lru[block] = None
            self.lru.move_to_end(block)
        while len(self.lru) > self.blocks:
            self.lru.popitem(last=False)
        return min(hits * BLOCK_TOKENS, request.input_tokens - 1)
