"""What reporters send: attached runs (a user's script with StudioCallback) and the events of any job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .. import lineage
from ..wire import IngestBatch, IngestResult, Job, RunCreate
from .deps import JobsDep, SettingsDep, StoreDep

router = APIRouter()


@router.post("/runs", status_code=201)
def open_run(run: RunCreate, jobs: JobsDep, settings: SettingsDep) -> Job:
    job = jobs.open_run(run)
    lineage.record_run(jobs.folder(job.id), job.id, run, settings.data_dir)
    return job


@router.post("/jobs/{job_id}/events", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/IngestBatch"}}}}})
async def ingest(request: Request, job_id: str, store: StoreDep, jobs: JobsDep) -> IngestResult:
    """Idempotent: an event already stored (same attempt and seq) is counted as a duplicate."""
    # The body first: past the route's cap the guard answers 413 whatever the path names (as for any
    # other body), and the job is looked up once the batch is here.
    body = await request.body()

    def run() -> IngestResult:
        job = jobs.get(job_id)  # 404 for an unknown job
        # The body is read here, not by FastAPI: pydantic-core parses and checks it in one pass, where FastAPI
        # would build it as Python objects with json.loads, then check those (about a third more time).
        try:
            batch = IngestBatch.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                          for e in error.errors(include_url=False)]) from None
        stored = store.ingest(job.id, batch.attempt, batch.events)
        jobs.events_stored(job, stored)
        return IngestResult(accepted=len(stored), duplicates=len(batch.events) - len(stored))

    return await run_in_threadpool(run)
