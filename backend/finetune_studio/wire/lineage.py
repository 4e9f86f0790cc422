"""Lineage (issue 16; Kotlin twins in Lineage.kt): what a run came from (code, data, environment), what
changed between two runs, and whether the working tree still holds what a run came from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..spec import JobSpec


class CodeState(BaseModel):
    folder: str
    repository: str | None = Field(None, description="the git work tree's top folder; null: not a repository")
    commit: str | None = None
    branch: str | None = None
    diff: str = Field("", description="uncommitted changes of tracked files under the folder (unified diff)")
    files: dict[str, str | None] = Field(
        default_factory=dict, description="each changed or untracked file (path in the repository) -> its "
        "text; null: deleted, binary or too large")
    note: str | None = None


class DataFile(BaseModel):
    field: str = Field(description="data.train or data.eval")
    path: str
    size: int
    mtime: float
    rows: int | None
    sha256: str


class Lineage(BaseModel):
    """`GET /api/jobs/{id}/lineage`."""

    job_id: str
    recorded_at: float
    spec: JobSpec | None = None
    training_args: dict[str, str | int | float | bool | None] | None = None
    script: str | None = Field(None, description="an attached run's script")
    code: CodeState | None = None
    data: list[DataFile] = Field(default_factory=list)
    environment: dict[str, str | None] = Field(default_factory=dict)


class ValueChange(BaseModel):
    key: str
    a: Any = None
    b: Any = None


class FileChange(BaseModel):
    path: str
    diff: str


class RowChange(BaseModel):
    row: int = Field(description="1-based row of b's file (a's for a removed row)")
    a: str | None = Field(None, description="the row in a's file, when that file is still on disk")
    b: str | None = None


class DataChange(BaseModel):
    field: str
    a: DataFile | None
    b: DataFile | None
    changed_rows: list[int] = Field(default_factory=list)
    added_rows: int = 0
    removed_rows: int = 0
    rows: list[RowChange] = Field(default_factory=list)
    note: str | None = None


class LineageDiff(BaseModel):
    """`GET /api/jobs/{a}/lineage/diff/{b}`: what changed from run a to run b."""

    a: str
    b: str
    spec: list[ValueChange]
    code: list[FileChange]
    code_note: str | None = None
    data: list[DataChange]
    environment: list[ValueChange]


class WorktreeCheck(BaseModel):
    """`GET /api/jobs/{id}/lineage/worktree`: does the project folder still hold what the run came from?
    Before "Clone as new job": the same commit, the same uncommitted changes under the folder, the same data."""

    job_id: str
    matches: bool | None = Field(description="true: same commit, same files and same data; false: something "
                                 "differs (listed); null: the code cannot be compared (see note) and nothing "
                                 "else differs")
    folder: str | None = Field(None, description="the folder whose code was recorded (project or script folder)")
    repository: str | None = None
    commit_then: str | None = None
    commit_now: str | None = None
    changed_files: list[FileChange] = Field(
        default_factory=list, description="files whose text differs from the run's (unified diff, run -> now)")
    data_changed: list[DataChange] = Field(
        default_factory=list, description="data files whose content differs from the run's (a: then, b: now; "
        "null b: the file is gone)")
    note: str | None = None
