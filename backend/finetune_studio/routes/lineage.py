"""`GET /api/jobs/{id}/lineage` (what a run came from), `GET /api/jobs/{a}/lineage/diff/{b}` (what changed
from run a to run b: spec, code, data, environment) and `GET /api/jobs/{id}/lineage/worktree` (whether the
working tree still holds what the run came from, before "Clone as new job"). Recorded by `lineage.py` at
submit, compared by `lineagediff.py`."""

from __future__ import annotations

from fastapi import APIRouter

from .. import lineage, lineagediff
from ..wire import Lineage, LineageDiff, WorktreeCheck
from .deps import JobDep, JobsDep, SettingsDep

router = APIRouter()


@router.get("/jobs/{job_id}/lineage")
def get_lineage(job: JobDep, jobs: JobsDep) -> Lineage:
    return lineage.read(jobs.folder(job.id), job.id)


@router.get("/jobs/{job_id}/lineage/diff/{other_id}")
def lineage_diff(job: JobDep, other_id: str, jobs: JobsDep) -> LineageDiff:
    other = jobs.get(other_id)
    folder_a, folder_b = jobs.folder(job.id), jobs.folder(other.id)
    return lineagediff.diff(lineage.read(folder_a, job.id), lineage.read(folder_b, other.id), folder_a, folder_b)


@router.get("/jobs/{job_id}/lineage/worktree")
def lineage_worktree(job: JobDep, jobs: JobsDep, settings: SettingsDep) -> WorktreeCheck:
    folder = jobs.folder(job.id)
    return lineagediff.worktree(lineage.read(folder, job.id), folder, settings.data_dir)
