"""Byte-level scanning of an upstream SSE stream: the only per-chunk work the router does.

Every chunk of every stream passes here, so nothing is JSON-parsed except the
one usage chunk. The scanner forwards whole events only (an incomplete event
at the end of a read is held until its `\\n\\n` arrives; a client cannot act on
half an event anyway), which makes counting exact with C-level `bytes.count`
and lets the usage chunk be recognised and, when the client did not ask for
it, cut out. It records when the first token event and the last one were
forwarded, which is what the client sees as TTFT and pace.

The SSE spec allows CRLF, LF or CR line ends (sse-starlette, used by
llama-cpp-python's server, writes CRLF): a read with a CR in it is turned
into LF line ends before scanning (a CR at the very end is held, its LF may
be next), so the client always gets LF. Comment events (`: ping`
keep-alives) are forwarded but are not tokens: they neither start the TTFT
clock nor count. An event that is an error object (`data: {"error": ...}`)
is not forwarded (an endpoint may echo the request into it): the scanner
marks the stream failed and the proxy ends it with its own error.

The client sees the deployment's model name whichever backend answered
(a hosted provider names its own model, often a dated snapshot): the
scanner reads the first event's `"model"` member and, only when it differs
from the served name, rewrites that member in every event it forwards (a
regex substitution per read; an engine that already says the served name
costs one search on its first read). `"model":` can only be a key there:
inside a JSON string its quotes would be escaped.

OpenAI-style streams: optional opening chunk with the assistant role and no
text, one chunk per token (or a few tokens), maybe a finish chunk, the usage
chunk (`"choices":[]`, `"usage":{...}`) when `stream_options.include_usage`,
then `data: [DONE]`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from weir.planner.usefulness import Pace

_END = b"\n\n"
_DONE = b"data: [DONE]"
_ERROR_MARK = b'"error"'
_COMMENT_AFTER_END = b"\n\n:"
_USAGE_MARKS = (b'"usage":{', b'"usage": {')
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*("(?:[^"\\]|\\.)*")')


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The served model name as the scanner compares and writes it."""

    name: str
    literal: bytes  # the name as a JSON string
    member: bytes  # `"model":<literal>`, escaped as a regex replacement

    def rename(self, data: bytes) -> bytes:
        """`data` with every `"model"` member set to the served name."""
        return _MODEL_FIELD.sub(self.member, data)


@functools.lru_cache(maxsize=16)
def served_model(name: str) -> ServedModel:
    """`ServedModel` of `name` (built once per name)."""
    literal = json.dumps(name).encode()
    return ServedModel(name, literal, b'"model":' + literal.replace(b"\\", b"\\\\"))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, as the upstream reported (or as counted)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reported: bool = False


def parse_usage(obj: object) -> Usage | None:
    """The usage of a chunk or response body (None when absent or malformed)."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = cached if isinstance(cached, int) else 0
    return Usage(max(prompt, 0), max(completion, 0), min(max(cached, 0), prompt), True)


def _has_usage(segment: bytes) -> bool:
    return _USAGE_MARKS[0] in segment or _USAGE_MARKS[1] in segment


class StreamScanner:
    """Follows one SSE response; `feed` returns the bytes to send to the client."""

    __slots__ = (
        "_opening_seen",
        "_pending",
        "_renaming",
        "done",
        "events",
        "failed",
        "first_token_at",
        "itl_target_s",
        "last_token_at",
        "model",
        "non_token_events",
        "pace",
        "strip_usage",
        "usage",
    )

    def __init__(
        self,
        *,
        strip_usage: bool,
        itl_target_s: float | None = None,
        model: ServedModel | None = None,
    ) -> None:
        self.strip_usage = strip_usage
        # the served name, until the first event shows the upstream says it too
        self.model = model
        self._renaming = False
        # per-token ITL (weir.planner.usefulness.Pace): each read's token events by their gap
        self.itl_target_s = itl_target_s
        self.pace = Pace() if itl_target_s is not None else None
        self._pending = b""
        self._opening_seen = False
        self.events = 0
        self.non_token_events = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.usage: Usage | None = None
        self.done = False
        self.failed = False

    def feed(self, chunk: bytes, now: float) -> bytes:
        """Scan one read; the complete events in it (less a stripped usage chunk)."""
        data = self._pending + chunk if self._pending else chunk
        held = b""
        if b"\r" in data:
            if data.endswith(b"\r"):
                data, held = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = data.rfind(_END)
        if cut < 0:
            self._pending = data + held
            return b""
        cut += 2
        segment, self._pending = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        self._pending += held
        if _ERROR_MARK in segment:
            segment = self._take_errors(segment)
        count = segment.count(_END)
        self.events += count
        special = segment.count(_COMMENT_AFTER_END) + segment.startswith(b":")
        if _has_usage(segment):
            segment = self._take_usage(segment)
            special += 1
        if _DONE in segment:
            self.done = True
            special += 1
        if self.first_token_at is None:
            special += self._find_first_token(segment, now)
        if count > special:
            self.last_token_at = now
            if self.pace is not None and self.itl_target_s is not None:
                self.pace.chunk(now, count - special, self.itl_target_s)
        self.non_token_events += special
        return self._rename(segment) if self.model is not None else segment

    def flush(self, now: float = 0.0) -> bytes:
        """What is left at the end of the stream (a held CR ends its line, then whatever
        last event is unterminated)."""
        out = b""
        if self._pending.endswith(b"\r"):
            pending, self._pending = self._pending, b""
            out = self.feed(pending[:-1] + b"\n", now)
        rest, self._pending = self._pending, b""
        return out + (self._rename(rest) if self.model is not None else rest)

    @property
    def late_tokens(self) -> int | None:
        """Tokens that came after a gap longer than the ITL target (None: not counted)."""
        return None if self.pace is None else self.pace.late_tokens

    @property
    def token_events(self) -> int:
        """Events that carried generated text (the fallback token count)."""
        return max(self.events - self.non_token_events, 0)

    def _rename(self, segment: bytes) -> bytes:
        """The served name in `segment`'s events (stops looking once the upstream says it)."""
        model = self.model
        assert model is not None
        if self._renaming:
            return model.rename(segment)
        found = _MODEL_FIELD.search(segment)
        if found is None:
            return segment
        if found.group(1) == model.literal:
            self.model = None  # an upstream keeps its name for the whole stream
            return segment
        self._renaming = True
        return model.rename(segment)

    def _find_first_token(self, segment: bytes, now: float) -> int:
        """Note when the first text event passed; returns 1 for a role-only opening."""
        openings = 0
        for event in segment.split(_END):
            if not event.strip() or event.startswith((_DONE, b":")) or _has_usage(event):
                continue
            if b'"role"' in event and not self._opening_seen:
                self._opening_seen = True
                openings += 1
                continue
            self.first_token_at = now
            break
        return openings

    def _take_errors(self, segment: bytes) -> bytes:
        """Drop error-object events (and everything after the first); mark the stream failed."""
        kept: list[bytes] = []
        for event in segment.split(_END):
            if _ERROR_MARK in event and _is_error_event(event):
                self.failed = True
                break
            kept.append(event)
        return _END.join(kept) + (_END if self.failed and kept and kept[-1] else b"")

    def _take_usage(self, segment: bytes) -> bytes:
        events = segment.split(_END)
        kept: list[bytes] = []
        for event in events:
            if self.usage is None and _has_usage(event):
                payload = event.strip()
                if payload.startswith(b"data:"):
                    payload = payload[5:]
                try:
                    self.usage = parse_usage(json.loads(payload))
                except ValueError:
                    self.usage = None
                if self.strip_usage:
                    continue
            kept.append(event)
        return _END.join(kept)


def _is_error_event(event: bytes) -> bool:
    """Is this event's data an object with an `error` member? (Only called on a mark.)"""
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    try:
        obj = json.loads(b"\n".join(lines)) if lines else None
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and "error" in obj
