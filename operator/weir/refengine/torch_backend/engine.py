"""Continuous batching around the reference model: requests join and leave every step.

One scheduler coroutine runs steps back to back while there is work. Each
step admits waiting requests into free batch slots, prefills up to
`prefill_chunk_tokens` prompt tokens (chunked prefill, oldest request first;
a request whose prompt is done samples its first token), then decodes one
token for every request that already has one, as one batched pass. The
forward passes run in a worker thread so the event loop keeps serving HTTP;
all bookkeeping (admission, cancellation, finishing) happens on the loop
between steps, so nothing is shared across threads while a step runs. A
cancelled request leaves the batch at the next step boundary. Beyond
`max_batch` running and `max_waiting` queued requests, `submit` refuses at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field

from weir.engines.errors import BadRequestError, EngineStoppedError, QueueFullError
from weir.refengine.protocol import EngineStats, GenerationRequest, Token
from weir.refengine.tokenizer import EOS_ID, VOCAB_SIZE
from weir.refengine.torch_backend import model

# Sampled bytes are printable ASCII, newline or end-of-sequence, so answers are text.
_ALLOWED = [10, *range(32, 127), EOS_ID]


class TorchSettings(BaseModel):
    """Model size, batch limits and device of the reference engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: int = Field(default=4, ge=1, le=128)
    width: int = Field(default=256, ge=8, description="Model width; a multiple of heads.")
    heads: int = Field(default=4, ge=1)
    max_seq_len: int = Field(default=2048, ge=8, description="Prompt plus output, tokens.")
    max_batch: int = Field(default=8, ge=1, description="Running requests (batch slots).")
    prefill_chunk_tokens: int | None = Field(
        default=512,
        ge=1,
        description="Prompt tokens prefilled per step (chunked prefill); None: whole prompts.",
    )
    max_waiting: int = Field(default=64, ge=0, description="Queued requests before 503.")
    device: str = Field(default="auto", description="cpu, cuda, or auto (cuda when present).")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads.")
    seed: int = Field(default=0, description="Seed of the random weights.")


@dataclass(eq=False)
class _Sequence:
    request: GenerationRequest
    queue: asyncio.Queue[Token | BaseException] = field(default_factory=asyncio.Queue)
    slot: int = -1
    length: int = 0
    prefilled: int = 0
    generated: int = 0
    last_token: int = 0
    cancelled: bool = False
    cached_tokens: int = 0
    generator: torch.Generator | None = None

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[Token]:
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[Token]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason is not None:
                return


class TorchEngine:
    """See the module docstring."""

    engine_type = "torch"

    def __init__(self, settings: TorchSettings | None = None) -> None:
        self.settings = s = settings or TorchSettings()
        if s.width % s.heads:
            raise BadRequestError(f"width {s.width} is not a multiple of heads {s.heads}")
        use_cuda = s.device == "cuda" or (s.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.shape = model.ModelShape(s.layers, s.width, s.heads, s.max_seq_len, s.max_batch)
        self._weights: model.Weights | None = None
        self._cache: model.KVCache | None = None
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._free = list(range(s.max_batch))
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.steps = 0
        self.peak_batch = 0

    def submit(self, request: GenerationRequest) -> _Sequence:
        s = self.settings
        if len(request.prompt_ids) + request.max_tokens > s.max_seq_len:
            raise BadRequestError(
                f"prompt ({len(request.prompt_ids)} tokens) plus max_tokens "
                f"({request.max_tokens}) exceeds the engine's max_seq_len {s.max_seq_len}"
            )
        if self._task is None:
            raise EngineStoppedError("the torch engine is not running")
        if len(self._running) + len(self._waiting) >= s.max_batch + s.max_waiting:
            raise QueueFullError(len(self._running), len(self._waiting))
        seq = _Sequence(request)
        if request.temperature > 0:
            seq.generator = torch.Generator(device=self.device)
            seq.generator.manual_seed(request.seed if request.seed is not None else 0)
        self._waiting.append(seq)
        self._wakeup.set()
        return seq

    def stats(self) -> EngineStats:
        used = sum(seq.length for seq in self._running)
        capacity = self.settings.max_batch * self.settings.max_seq_len
        return EngineStats(len(self._running), len(self._waiting), used / capacity)

    async def start(self) -> None:
        if self.settings.threads is not None:
            torch.set_num_threads(self.settings.threads)
        if self._weights is None:
            self._weights = await asyncio.to_thread(
                model.init_weights, self.shape, self.device, self.settings.seed
            )
            self._cache = model.empty_cache(self.shape, self.device)
        self._task = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stopped = EngineStoppedError("the torch engine stopped")
        for seq in [*self._waiting, *self._running]:
            seq.queue.put_nowait(stopped)
        self._waiting.clear()
        self._running.clear()
        self._free = list(range(self.settings.max_batch))

    async def _schedule(self) -> None:
        while True:
            self._drop_cancelled()
            if not self._running and not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._admit()
            prefill = self._prefill_work()
            decoding = [seq for seq in self._running if seq.generated > 0]
            tokens = await asyncio.to_thread(self._step, prefill, decoding)
            self.steps += 1
            self.peak_batch = max(self.peak_batch, len(prefill) + len(decoding))
            for seq, token in tokens:
                self._emit(seq, token)

    def _prefill_work(self) -> list[tuple[_Sequence, int, int]]:
        """(sequence, start, end) prompt spans for this step, oldest first, within budget."""
        budget = self.settings.prefill_chunk_tokens or self.settings.max_seq_len
        work = []
        for seq in self._running:
            remaining = len(seq.request.prompt_ids) - seq.prefilled
            if remaining <= 0:
                continue
            if budget <= 0:
                break
            take = min(remaining, budget)
            work.append((seq, seq.prefilled, seq.prefilled + take))
            seq.prefilled += take
            budget -= take
        return work

    def _drop_cancelled(self) -> None:
        self._waiting = deque(seq for seq in self._waiting if not seq.cancelled)
        for seq in [seq for seq in self._running if seq.cancelled]:
            self._release(seq)

    def _admit(self) -> None:
        while self._waiting and self._free:
            seq = self._waiting.popleft()
            seq.slot = self._free.pop()
            self._running.append(seq)

    def _release(self, seq: _Sequence) -> None:
        self._running.remove(seq)
        self._free.append(seq.slot)

    def _emit(self, seq: _Sequence, token: int) -> None:
        if seq.cancelled:
            return
        seq.generated += 1
        seq.last_token = token
        req = seq.request
        finish: str | None = None
        if token == EOS_ID:
            finish = "stop"
        elif seq.generated >= req.max_tokens or seq.length >= self.settings.max_seq_len:
            finish = "length"
        seq.queue.put_nowait(Token(token, finish))  # type: ignore[arg-type]
        if finish is not None:
            self._release(seq)

    def _step(
        self, prefill: list[tuple[_Sequence, int, int]], decoding: list[_Sequence]
    ) -> list[tuple[_Sequence, int]]:
        """Worker thread: prefill prompt chunks, decode the running requests in one batch."""
        assert self._weights is not None and self._cache is not None
        w, cache, shape, dev = self._weights, self._cache, self.shape, self.device
        out: list[tuple[_Sequence, int]] = []
        with torch.inference_mode():
            for seq, start, end in prefill:
                ids = torch.tensor(seq.request.prompt_ids[start:end], device=dev)
                logits = model.prefill(w, cache, shape, seq.slot, ids, start)
                seq.length = end
                if end == len(seq.request.prompt_ids):  # prompt done: first token
                    out.append((seq, self._sample(seq, logits)))
            if decoding:
                batch = model.decode(
                    w,
                    cache,
                    shape,
                    torch.tensor([s.slot for s in decoding], device=dev),
                    torch.tensor([s.last_token for s in decoding], device=dev),
                    torch.tensor([s.length for s in decoding], device=dev),
                )
                for seq, logits in zip(decoding, batch.unbind(0), strict=True):
                    seq.length += 1
                    out.append((seq, self._sample(seq, logits)))
        return out

    def _sample(self, seq: _Sequence, logits: torch.Tensor) -> int:
        allowed = _ALLOWED[:-1] if seq.request.ignore_eos else _ALLOWED
        mask = torch.full((VOCAB_SIZE,), float("-inf"), device=logits.device)
        mask[allowed] = 0.0
        logits = logits + mask
        if seq.generator is None:
            return int(logits.argmax().item())
        probs = torch.softmax(logits / seq.request.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=seq.generator).item())
