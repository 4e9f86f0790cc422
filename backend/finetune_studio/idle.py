"""Idle shutdown: the server stops itself when no job runs and no client has come for a while.

`Activity` wraps the ASGI app and notes every request; an open SSE stream (a dashboard, the plugin, `run`
following a job) counts as a client for as long as it stays open. Reporters' event posts do not count:
their job keeps the server up anyway, and a finished job's worker is no client. `watch` stops the server
once nothing counted for `timeout` seconds and the scheduler is not busy (`serve --idle-timeout`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class Activity:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = 0
        self.last_seen = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "POST" and scope["path"].endswith("/events")):
            await self.app(scope, receive, send)
            return
        self.open += 1
        self.last_seen = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last_seen = time.monotonic()

    def idle_seconds(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.last_seen


async def watch(activity: Activity, busy: Callable[[], Awaitable[bool]], timeout: float,
                stop: Callable[[], None]) -> None:
    """Call `stop` once no job ran and no client came for `timeout` seconds."""
    while True:
        await asyncio.sleep(min(30.0, timeout / 4))
        if await busy():
            activity.last_seen = time.monotonic()  # the quiet while starts when the last job ends
        elif activity.idle_seconds() >= timeout:
            stop()
            return
