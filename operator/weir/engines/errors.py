"""Errors raised by the engines, named by what the caller should do next.

The HTTP layer maps each to one status code and an OpenAI-style error body, so a
client (the router, the profiler) can tell "retry later" from "fix the request".
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error raised by `weir.engines`."""


class BadRequestError(EngineError):
    """The request is malformed or asks for something the engine cannot do (HTTP 400)."""


class QueueFullError(EngineError):
    """The running batch and the waiting queue are full: retry later (HTTP 503)."""

    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(
            f"engine overloaded: {running} requests running and the waiting queue is full "
            f"({waiting} waiting); retry later or send to another replica"
        )
        self.running = running
        self.waiting = waiting


class RateLimitedError(EngineError):
    """The stand-in's request rate limit was exceeded (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s:.2f} s")
        self.retry_after_s = retry_after_s


class AuthError(EngineError):
    """Missing or wrong bearer key (HTTP 401)."""


class EngineStoppedError(EngineError):
    """The engine was stopped while the request was queued or running."""


class SpecError(EngineError):
    """A launch, cache or cold-start input is inconsistent (a permanent error)."""


class ProfilerError(EngineError):
    """The profiler could not measure the endpoint (unreachable, errors, bad answers)."""
