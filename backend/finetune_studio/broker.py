"""In-process fan-out: tells SSE subscribers that something new is stored.

Subscribers do not receive events through the broker; they are woken and read what is new from the
store by sequence number. So a slow subscriber never makes the server buffer without bound, and it can
never miss or duplicate an event. The global stream (`/api/stream`) keeps a short ring of job snapshots.
All methods run on the event loop's thread; threads call `notify_threadsafe`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from .wire import Job

GLOBAL = "*"


class Broker:
    def __init__(self, ring_size: int = 2000) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._ring: deque[tuple[int, Job]] = deque(maxlen=ring_size)
        self._global_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextmanager
    def listen(self, key: str) -> Iterator[asyncio.Event]:
        """An event that is set whenever `key` (a job id, or GLOBAL) has news; clear it after reading."""
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(key, None)

    def notify(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    def notify_threadsafe(self, key: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.notify, key)

    def job_changed(self, job: Job) -> None:
        """A job's state or progress changed: record it for the global stream."""
        self._global_seq += 1
        self._ring.append((self._global_seq, job))
        self.notify(GLOBAL)

    def job_changes_after(self, after: int) -> tuple[list[tuple[int, Job]], bool]:
        """Snapshots newer than `after`; the flag says the ring no longer reaches back that far."""
        if self._ring and after < self._ring[0][0] - 1:
            return list(self._ring), True
        return [(seq, job) for seq, job in self._ring if seq > after], False

    @property
    def global_seq(self) -> int:
        return self._global_seq
