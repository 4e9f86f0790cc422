"""Typed dependencies: the app's domain objects, taken from `app.state` (set once by `create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..broker import Broker
from ..captures import Captures
from ..jobs import Jobs
from ..scheduler import Scheduler
from ..settings import Settings
from ..store import Store
from ..wire import Job


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _broker(request: Request) -> Broker:
    return request.app.state.broker  # type: ignore[no-any-return]


def _jobs(request: Request) -> Jobs:
    return request.app.state.jobs  # type: ignore[no-any-return]


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler  # type: ignore[no-any-return]


def _captures(request: Request) -> Captures:
    return request.app.state.captures  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
BrokerDep = Annotated[Broker, Depends(_broker)]
JobsDep = Annotated[Jobs, Depends(_jobs)]
SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
CapturesDep = Annotated[Captures, Depends(_captures)]


async def _existing_job(job_id: str, jobs: JobsDep) -> Job:
    """The job named in the path, or 404 before the handler (and any stream) starts."""
    return await run_in_threadpool(jobs.get, job_id)


JobDep = Annotated[Job, Depends(_existing_job)]
