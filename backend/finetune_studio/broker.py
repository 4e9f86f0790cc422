"""In-process fan-out: tells SSE subscribers that something new is stored.

Subscribers do not receive events through the broker; they are woken and read what is new from the
store by sequence number. So a slow subscriber never makes the server buffer without bound, and it can
never miss or duplicate an event. The global stream (`/api/stream`) keeps a short ring of job snapshots,
numbered from the server's start time in microseconds so that an id from an earlier server life is
always below this life's ids and is answered with a fresh snapshot.

`notify` and `job_changed` are safe from any thread: they hand the work to the event loop. Everything
else runs on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from .wire import Job

GLOBAL = "*"


class Broker:
    def __init__(self, ring_size: int = 2000) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._ring: deque[tuple[int, Job]] = deque(maxlen=ring_size)
        self._first_id = time.time_ns() // 1000
        self._last_id = self._first_id
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the event loop at start; until then notifications have no one to wake."""
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
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, key)

    def job_changed(self, job: Job) -> None:
        """A job's state or progress changed: record it for the global stream."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._record, job)

    def _wake(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    def _record(self, job: Job) -> None:
        self._last_id += 1
        self._ring.append((self._last_id, job))
        self._wake(GLOBAL)

    def job_changes_after(self, after: int) -> list[tuple[int, Job]] | None:
        """Snapshots newer than `after`; None when `after` is not of this server's life or the ring no
        longer reaches back that far: the caller then sends every job as it is now."""
        oldest = self._ring[0][0] if self._ring else self._last_id + 1
        if after < self._first_id or after < oldest - 1 or after > self._last_id:
            return None
        return [(seq, job) for seq, job in self._ring if seq > after]

    @property
    def last_id(self) -> int:
        return self._last_id
