"""Sending slots where live deliveries go before replayed ones: a semaphore with two queues."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Slots"]


class Slots:
    """At most ``size`` holders at a time. A waiting live delivery is let in before every waiting replayed
    one, so a replay of 100,000 queued on an endpoint delays a live message by one send, not by the queue."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._live: deque[asyncio.Future[None]] = deque()
        self._replayed: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def held(self, *, live: bool) -> AsyncIterator[None]:
        await self._acquire(live)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, live: bool) -> None:
        if self.free > 0 and not self._live and not (self._replayed and not live):
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._live if live else self._replayed
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed the slot as it was cancelled: pass it on
            else:
                queue.remove(turn)
            raise

    def _release(self) -> None:
        for queue in (self._live, self._replayed):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the slot passes straight to the next in line
                    return
        self.free += 1
