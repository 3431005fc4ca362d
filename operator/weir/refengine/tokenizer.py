"""A byte-level tokenizer shared by the reference and the emulated engine.

Both engines must count tokens the same way so that `usage` from either agrees
and the profiler can ask for an exact prompt length. One byte is one token
(ids 0-255); id 256 is end-of-sequence. Chat messages are rendered with a small
fixed template, so a chat prompt's token count is its rendered byte length.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

VOCAB_SIZE = 257
EOS_ID = 256


def encode(text: str) -> list[int]:
    """Token ids of `text` (its UTF-8 bytes)."""
    return list(text.encode("utf-8"))


def render_chat(messages: Sequence[tuple[str, str]]) -> str:
    """Render (role, content) pairs into one prompt ending with the assistant turn."""
    parts = [f"<|{role}|>\n{content}\n" for role, content in messages]
    parts.append("<|assistant|>\n")
    return "".join(parts)


class StreamDecoder:
    """Turns ids into text one at a time, holding back incomplete UTF-8 sequences."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, token_id: int) -> str:
        if token_id >= EOS_ID:
            return ""
        return self._decoder.decode(bytes((token_id,)))
