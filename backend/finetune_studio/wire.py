"""The wire contract: every JSON body the API sends or takes, besides the JobSpec (`spec.py`).

Mirrored by `plugin/.../core/Wire.kt` and the dashboard's JSDoc types; `tests/test_wire.py` writes one
example of each model into `tests/fixtures/wire/`, which the Kotlin tests parse, so drift fails a test.
Times are UNIX seconds (float). Non-finite floats go out as null (see `finite`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted"]
FINISHED_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "interrupted"})
RESUMABLE_STATES: frozenset[str] = frozenset({"failed", "cancelled", "interrupted"})
EventType = Literal["metric", "progress", "eval", "system", "log", "state", "end"]


def finite(value: float | None) -> float | None:
    """NaN and ±inf are not JSON: they travel as null, decided here only."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


class Progress(BaseModel):
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    samples_per_second: float | None = None
    eta_seconds: float | None = None


class JobError(BaseModel):
    type: str
    message: str
    hint: str | None = None


class Job(BaseModel):
    id: str
    name: str
    task: str
    kind: Literal["managed", "attached"]
    state: JobState
    attempt: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = Field(default_factory=Progress)
    device: str | None = None
    output_dir: str
    error: JobError | None = None
    best_metric: dict[str, float] | None = Field(
        None, description="the best eval value seen so far: {name: value}")
    spec: dict[str, Any]


class JobList(BaseModel):
    jobs: list[Job]


class Series(BaseModel):
    step: list[int]
    value: list[float | None]
    time: list[float]


class Metrics(BaseModel):
    series: dict[str, Series]
    total_points: dict[str, int] = Field(default_factory=dict, description="points stored per series")
    last_seq: int = Field(0, description="the job's last event seq when the series were read: "
                          "follow the stream with ?after=last_seq")


class LogLine(BaseModel):
    seq: int
    time: float
    stream: Literal["stdout", "stderr", "studio"]
    text: str


class Logs(BaseModel):
    lines: list[LogLine]


class StreamEvent(BaseModel):
    """One event of a job's SSE stream: `seq` is the SSE id; `data` depends on `type`:
    metric {step, values: {name: value}}, progress Progress, eval {step, values, confusion_matrix?,
    labels?}, system {values}, log LogLine, state Job."""

    seq: int
    type: EventType
    time: float
    data: dict[str, Any]


class ReporterEvent(BaseModel):
    """What a reporter sends; `seq` counts per attempt from 1."""

    seq: int = Field(ge=1)
    type: Literal["metric", "progress", "eval", "system", "log", "end"]
    time: float
    data: dict[str, Any] = Field(description="as in StreamEvent; `end` (attached runs) is {state, error?}")


class IngestBatch(BaseModel):
    attempt: int = Field(ge=1)
    events: list[ReporterEvent]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int


class RunCreate(BaseModel):
    """Open an attached run: a user's own script reporting through StudioCallback."""

    name: str = "attached run"
    task: str = "custom"
    output_dir: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="the script's TrainingArguments")
    pid: int | None = Field(None, description="the script's process: if it dies, the run is interrupted")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Device(BaseModel):
    index: int | None
    kind: Literal["cuda", "cpu", "mps"]
    name: str
    memory_total_mb: float | None = None
    memory_used_mb: float | None = None
    utilization: float | None = None
    busy_job: str | None = None


class SystemInfo(BaseModel):
    devices: list[Device]
    versions: dict[str, str]


class BatchExample(BaseModel):
    index: int = Field(description="row of the training file")
    text: str
    label: str | None
    tokens: int


class StepBatch(BaseModel):
    step: int
    examples: list[BatchExample] = Field(description="longest first")


class EvalSample(BaseModel):
    """One prediction of an evaluation next to its reference, as text: the predicted label, the NER
    entities, the answer span, the translation or the generated response."""

    input: str
    prediction: str
    reference: str


class Samples(BaseModel):
    """`GET /api/jobs/{id}/samples`: the samples of the job's latest evaluation (step None before one)."""

    step: int | None = None
    samples: list[EvalSample] = Field(default_factory=list)


class ServerInfo(BaseModel):
    """The content of `server.json`."""

    url: str
    token: str
    pid: int
    version: str
