"""Jobs as the API shows them, and what is read about them: progress, error, metric series, log lines, the
batch of a step, eval samples; the server's health, devices and `server.json`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..spec import JobSpec
from .base import Count, Finite, Name, ShortText

JobState = Literal["queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted"]
FINISHED_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "interrupted"})
RESUMABLE_STATES: frozenset[str] = frozenset({"failed", "cancelled", "interrupted"})


class Progress(BaseModel):
    step: Count = 0
    max_steps: Count = 0
    epoch: Finite = 0.0
    samples_per_second: Finite | None = None
    eta_seconds: Finite | None = None


class JobError(BaseModel):
    type: Name
    message: ShortText
    hint: ShortText | None = None


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
    spec: JobSpec | None = Field(None, description="what a managed job runs; null for attached runs")
    training_args: dict[str, str | int | float | bool | None] | None = Field(
        None, description="an attached run's TrainingArguments (its scalar values); null for managed jobs")


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
    stream: Literal["stdout", "stderr"]
    text: str


class Logs(BaseModel):
    lines: list[LogLine]



class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    pid: int = Field(description="the server's process: discovery checks it against server.json")


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


class ServerInfo(BaseModel):
    """The content of `server.json`."""

    url: str
    token: str
    pid: int
    version: str
