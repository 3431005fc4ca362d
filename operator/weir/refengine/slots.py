"""Admission for the emulated engine: a bounded running batch and a bounded queue.

A request holds a running slot from admission to its last token, like a
sequence in TensorRT-LLM's in-flight batch; beyond `max_running` requests wait
in FIFO order, and beyond `max_waiting` they are refused at once
(`QueueFullError`) so an overloaded replica answers instead of hanging. A slot
freed by a finished or cancelled request passes straight to the oldest waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from enum import Enum

from weir.engines.errors import QueueFullError


class _State(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


class Ticket:
    """One request's place: waiting, then running, then done."""

    def __init__(self, pool: SlotPool, future: asyncio.Future[None] | None) -> None:
        self._pool = pool
        self._future = future
        self._state = _State.RUNNING if future is None else _State.WAITING

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    def _promote(self) -> bool:
        if self._state is not _State.WAITING or self._future is None or self._future.done():
            return False
        self._state = _State.RUNNING
        self._future.set_result(None)
        return True

    async def wait(self) -> None:
        """Return once the request holds a running slot."""
        if self._future is not None and self._state is _State.WAITING:
            await asyncio.shield(self._future)

    def release(self) -> None:
        """Give the place back (idempotent); a running slot goes to the next waiter."""
        state, self._state = self._state, _State.DONE
        if state is _State.WAITING:
            self._pool._waiting_left()
        elif state is _State.RUNNING:
            self._pool._running_left()


class SlotPool:
    """Counts running and waiting requests and hands slots over in FIFO order."""

    def __init__(self, max_running: int, max_waiting: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        self._queue: deque[Ticket] = deque()

    def reserve(self) -> Ticket:
        """A running slot if one is free, else a queue place; `QueueFullError` if neither."""
        if self.running < self.max_running and not self.waiting:
            self.running += 1
            return Ticket(self, None)
        if self.waiting >= self.max_waiting:
            raise QueueFullError(self.running, self.waiting)
        ticket = Ticket(self, asyncio.get_running_loop().create_future())
        self.waiting += 1
        self._queue.append(ticket)
        return ticket

    def _waiting_left(self) -> None:
        self.waiting -= 1

    def _running_left(self) -> None:
        self.running -= 1
        self._fill()

    def _fill(self) -> None:
        while self._queue and self.running < self.max_running:
            ticket = self._queue.popleft()
            if ticket._promote():
                self.waiting -= 1
                self.running += 1
