"""The contract between the HTTP layer and an engine backend.

The OpenAI-compatible server (`server`) parses requests, counts tokens, streams
chunks and records the trtllm_ metrics; a backend only schedules generation.
Keeping that split means the emulated and the torch engine answer and measure
exactly alike, which is what lets one set of PromQL and one router serve both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationRequest:
    """What a backend needs to generate one completion."""

    request_id: str
    prompt_ids: tuple[int, ...]
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class Token:
    """One generated token; `finish_reason` is set on the last one."""

    token_id: int
    finish_reason: FinishReason | None = None


@dataclass(frozen=True)
class EngineStats:
    """Point-in-time load of an engine, read at scrape time."""

    running: int
    waiting: int
    kv_cache_utilization: float


class Generation(Protocol):
    """A submitted request: iterate it for tokens; `cancel` frees its slot."""

    cached_tokens: int

    def __aiter__(self) -> AsyncIterator[Token]: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    """A backend with continuous batching and a bounded waiting queue."""

    @property
    def engine_type(self) -> str: ...

    def submit(self, request: GenerationRequest) -> Generation:
        """Admit or queue the request; raises `QueueFullError` when the queue is full."""
        ...

    def stats(self) -> EngineStats: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class _CommonRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice is supported.")
    ignore_eos: bool = False

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatCompletionRequest(_CommonRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_CommonRequest):
    prompt: str | list[str]

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else "".join(self.prompt)


@dataclass
class Usage:
    """Token accounting of one request, as OpenAI's `usage` object."""

    prompt_tokens: int
    completion_tokens: int = 0
    cached_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }
