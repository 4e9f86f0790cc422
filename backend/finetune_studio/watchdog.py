"""Ends attached runs whose script is gone, so that no run stays `running` forever.

An attached run (a user's script with StudioCallback) reports its own end, an uncaught exception
included. A script killed outright cannot: the watchdog looks every few seconds at the running attached
runs and ends one as `failed` when its process (same host: the server listens on loopback) no longer
exists, or, when its process cannot be checked from here, as `interrupted` once nothing came from it
for `silence_seconds` (the reporter sends a heartbeat every 15 s, so only a gone or cut-off script falls
silent; a live local script paused in a debugger is left alone). Changes go through `Jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from starlette.concurrency import run_in_threadpool

from .jobs import Jobs
from .scheduler import pid_alive
from .wire import Job, JobError

SILENCE_SECONDS = 60.0
SILENCE_ENV = "FINETUNE_STUDIO_RUN_TIMEOUT"  # seconds; tests shorten it


def silence_seconds() -> float:
    """How long an attached run may stay silent: FINETUNE_STUDIO_RUN_TIMEOUT, else 60 s."""
    raw = os.environ.get(SILENCE_ENV)
    if raw is None:
        return SILENCE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{SILENCE_ENV}={raw!r} is not a number of seconds above 0: use e.g. 60, or unset it")
    return value


class Watchdog:
    def __init__(self, jobs: Jobs, silence: float, pids_are_local: bool) -> None:
        self.jobs = jobs
        self.silence = silence
        self.pids_are_local = pids_are_local  # a remote script's pid means nothing here
        self.interval = min(5.0, silence / 4)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="studio-watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await run_in_threadpool(self.check)

    def check(self) -> list[Job]:
        """End the attached runs whose script is gone; returns them."""
        now = time.monotonic()
        ended = []
        for job in self.jobs.store.list_jobs(states=("running",)):
            if job.kind != "attached":
                continue
            pid = self.jobs.store.job_pid(job.id)
            silent_for = now - self.jobs.last_heard(job.id, now)
            if self.pids_are_local and pid and not pid_alive(pid):
                error = JobError(type="process_gone", message=f"the script's process ({pid}) ended without "
                                 "reporting the end of its training: it was killed, or crashed hard",
                                 hint="the script's own output says why (out of memory, kill -9, a crash in "
                                      "native code)")
                ended.append(self.jobs.finish_run(job.id, "failed", error))
            elif silent_for > self.silence and not (self.pids_are_local and pid):
                # A live local process may be silent for good reasons (paused in a debugger at an anomaly,
                # every thread suspended); its death is what ends its run. Silence ends the others.
                error = JobError(type="no_heartbeat", message=f"nothing heard from the script for "
                                 f"{silent_for:.0f} s (its reporter sends a heartbeat every 15 s)",
                                 hint="the script stopped, hangs, or cannot reach this server")
                ended.append(self.jobs.finish_run(job.id, "interrupted", error))
        return ended
