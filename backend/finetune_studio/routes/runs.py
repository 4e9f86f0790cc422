"""What reporters send: attached runs (a user's script with StudioCallback) and the events of any job."""

from __future__ import annotations

from fastapi import APIRouter

from .. import lineage
from ..wire import IngestBatch, IngestResult, Job, RunCreate
from .deps import JobDep, JobsDep, SettingsDep, StoreDep

router = APIRouter()


@router.post("/runs", status_code=201)
def open_run(run: RunCreate, jobs: JobsDep, settings: SettingsDep) -> Job:
    job = jobs.open_run(run)
    lineage.record_run(jobs.folder(job.id), job.id, run, settings.data_dir)
    return job


@router.post("/jobs/{job_id}/events")
def ingest(job: JobDep, batch: IngestBatch, store: StoreDep, jobs: JobsDep) -> IngestResult:
    """Idempotent: an event already stored (same attempt and seq) is counted as a duplicate."""
    stored = store.ingest(job.id, batch.attempt, batch.events)
    jobs.events_stored(job, stored)
    return IngestResult(accepted=len(stored), duplicates=len(batch.events) - len(stored))
