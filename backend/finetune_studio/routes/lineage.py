"""`GET /api/jobs/{id}/lineage` (what a run came from) and `GET /api/jobs/{a}/lineage/diff/{b}` (what
changed from run a to run b: spec, code, data, environment). Recorded by `lineage.py` at submit."""

from __future__ import annotations

from fastapi import APIRouter

from .. import lineage
from ..lineage import Lineage, LineageDiff
from .deps import JobDep, JobsDep

router = APIRouter()


@router.get("/jobs/{job_id}/lineage")
def get_lineage(job: JobDep, jobs: JobsDep) -> Lineage:
    return lineage.read(jobs.folder(job.id), job.id)


@router.get("/jobs/{job_id}/lineage/diff/{other_id}")
def lineage_diff(job: JobDep, other_id: str, jobs: JobsDep) -> LineageDiff:
    other = jobs.get(other_id)
    folder_a, folder_b = jobs.folder(job.id), jobs.folder(other.id)
    return lineage.diff(lineage.read(folder_a, job.id), lineage.read(folder_b, other.id), folder_a, folder_b)
