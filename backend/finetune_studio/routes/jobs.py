"""Managed jobs and what they recorded: submit, list, cancel, resume, delete; metrics, logs, batches,
the latest evaluation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from .. import batches, lineage
from ..errors import NotFound, SpecError
from ..spec import check_files, parse_spec
from ..tasks import check_data
from ..wire import INT64_MAX, EventList, Job, JobList, Logs, Metrics, StepBatch, StreamEvent, error_responses
from .deps import JobDep, JobsDep, SchedulerDep, SettingsDep, StoreDep

router = APIRouter()


@router.post("/jobs", status_code=201, openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}}}})
def submit(body: dict[str, Any], jobs: JobsDep, scheduler: SchedulerDep, settings: SettingsDep) -> Job:
    spec = parse_spec(body, settings.project_dir)
    check_files(spec)
    problems = check_data(spec)  # what the worker would meet in the data, found now rather than in an hour
    if problems:
        raise SpecError(problems)
    scheduler.check_resources(spec)
    job = jobs.submit(spec)
    lineage.record_job(jobs.folder(job.id), job.id, spec, settings.project_dir, settings.data_dir)
    scheduler.wake()
    return job


@router.get("/jobs")
def list_jobs(store: StoreDep) -> JobList:
    return JobList(jobs=store.list_jobs())


@router.get("/jobs/{job_id}")
def get_job(job: JobDep) -> Job:
    return job


@router.post("/jobs/{job_id}/cancel", responses=error_responses(409))
async def cancel(job_id: str, scheduler: SchedulerDep) -> Job:
    return await scheduler.cancel(job_id)


@router.post("/jobs/{job_id}/resume", responses=error_responses(409))
def resume(job_id: str, jobs: JobsDep, scheduler: SchedulerDep) -> Job:
    job = jobs.resume(job_id)
    scheduler.wake()
    return job


@router.delete("/jobs/{job_id}", status_code=204, responses=error_responses(409))
def delete(job_id: str, jobs: JobsDep, files: bool = False) -> None:
    jobs.delete(job_id, files)


@router.get("/jobs/{job_id}/metrics")
def metrics(job: JobDep, store: StoreDep, names: str | None = None,
            max_points: Annotated[int, Query(ge=10, le=1_000_000)] = 2000,
            from_step: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None,
            to_step: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None) -> Metrics:
    """Each series downsampled to about max_points (min and max per bucket), over from_step..to_step
    (inclusive) when given: raw points once that range holds at most max_points. total_points counts the
    whole series."""
    # Read before the series: events after it may repeat a point read below; merged by step, harmless.
    result = Metrics(series={}, last_seq=store.last_seq(job.id))
    wanted = [n for n in names.split(",") if n] if names else store.metric_names(job.id)
    for name in wanted:
        result.series[name], result.total_points[name] = store.series(job.id, name, max_points, from_step, to_step)
    return result


@router.get("/jobs/{job_id}/logs")
def logs(job: JobDep, store: StoreDep, after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
         limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Logs:
    return Logs(lines=store.logs(job.id, after, limit))


@router.get("/jobs/{job_id}/steps/{step}/batch")
def step_batch(job: JobDep, jobs: JobsDep, step: Annotated[int, Path(ge=0, le=INT64_MAX)]) -> StepBatch:
    if job.spec is None:
        raise NotFound(f"job {job.id} is an attached run: its batches are not recorded")
    return batches.step_batch(jobs.folder(job.id), job.spec, step)


@router.get("/jobs/{job_id}/evals/latest")
def latest_eval(job: JobDep, store: StoreDep) -> StreamEvent | None:
    """The job's last evaluation: values and details (samples, confusion matrix...); null before one."""
    return store.latest_eval(job.id)


@router.get("/jobs/{job_id}/events")
def events(job: JobDep, store: StoreDep, types: Annotated[str | None, Query(max_length=200)] = None,
           after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
           limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> EventList:
    """The job's stored events after `after`, oldest first; `types` (comma-separated) picks some, e.g. the
    anomalies the dashboard marks on the loss chart."""
    picked = tuple(t for t in (types or "").split(",") if t) or None
    return EventList(events=store.events_after(job.id, after, limit, types=picked))
