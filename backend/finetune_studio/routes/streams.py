"""Server-sent events: one job's events (`/api/jobs/{id}/stream`) and job changes (`/api/stream`).

A job's stream resumes from `?after=` or `Last-Event-ID` (event seqs, stored, so they survive restarts).
The global stream's ids come from the broker; an id it no longer knows (older than its ring, or from an
earlier server life) gets every job as it is now, then the live changes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..broker import GLOBAL
from ..wire import INT64_MAX
from .deps import BrokerDep, JobDep, StoreDep

router = APIRouter()
PAGE = 2000
After = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="resume after this event id")]


def _cursor(after: int | None, last_event_id: str | None, default: int) -> int:
    """`?after=` wins; a `Last-Event-ID` that is not a seq (`null`, junk, beyond 64 bits) counts as none."""
    if after is not None:
        return after
    if last_event_id and re.fullmatch(r"[0-9]{1,18}", last_event_id.strip()):
        return int(last_event_id)
    return default


@router.get("/jobs/{job_id}/stream", response_class=EventSourceResponse)
async def job_stream(job: JobDep, store: StoreDep, broker: BrokerDep, after: After = None,
                     last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
    cursor = _cursor(after, last_event_id, 0)
    with broker.listen(job.id) as news:
        while True:
            news.clear()  # before reading: news arriving during the read wakes the wait below
            events = await run_in_threadpool(store.events_after, job.id, cursor, PAGE)
            for event in events:
                cursor = event.seq
                yield ServerSentEvent(data=event.model_dump(mode="json"), event=event.type, id=str(event.seq))
            if len(events) < PAGE:
                await news.wait()


@router.get("/stream", response_class=EventSourceResponse)
async def global_stream(store: StoreDep, broker: BrokerDep, after: After = None,
                        last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
    cursor = _cursor(after, last_event_id, broker.last_id)
    with broker.listen(GLOBAL) as news:
        while True:
            news.clear()
            changes = broker.job_changes_after(cursor)
            if changes is None:  # an id this server does not know: everything as it is now
                cursor = broker.last_id
                for job in await run_in_threadpool(store.list_jobs):
                    yield ServerSentEvent(data=job.model_dump(mode="json"), event="state", id=str(cursor))
                continue
            for seq, job in changes:
                cursor = seq
                yield ServerSentEvent(data=job.model_dump(mode="json"), event="state", id=str(seq))
            await news.wait()
