"""The wire contract: every JSON body the API sends or takes, besides the JobSpec (`spec.py`).

Mirrored by `plugin/.../core/Wire.kt` and the dashboard's JSDoc types; `tests/test_wire.py` writes one
example of each model into `tests/fixtures/wire/`, which the Kotlin tests parse, so drift fails a test.
Times are UNIX seconds (float). Non-finite floats go out as null (see `finite` and `json_safe`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .spec import JobSpec

JobState = Literal["queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted"]
FINISHED_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "interrupted"})
RESUMABLE_STATES: frozenset[str] = frozenset({"failed", "cancelled", "interrupted"})
EventType = Literal["metric", "progress", "eval", "system", "log", "state", "end"]


def finite(value: float | None) -> float | None:
    """NaN and ±inf are not JSON: they travel as null, decided here only."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (in dicts, lists and tuples too) replaced by null."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
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
    training_args: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="the script's TrainingArguments (scalar values)")
    pid: int | None = Field(None, description="the script's process: if it dies, the run is interrupted")


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


# -- captured tensors (`POST/GET /api/tensors`; the payload is described in docs/tensors.md) -----------
class ArrayData(BaseModel):
    """A float32 array: little-endian bytes, row-major, in base64 (NaN and ±inf survive)."""

    dtype: Literal["float32"] = "float32"
    shape: list[Annotated[int, Field(ge=0)]]
    data: str


class HistogramData(BaseModel):
    edges: list[float | None]
    counts: list[int]
    sample_size: int
    sampled: bool


class TensorSummary(BaseModel):
    """Mirrors `tensors.Summary`; non-finite floats travel as null."""

    kind: str
    shape: list[int]
    dtype: str
    device: str
    numel: int
    bytes: int
    requires_grad: bool = False
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int | None = None
    posinf: int | None = None
    neginf: int | None = None
    zeros: int | None = None
    histogram: HistogramData | None = None
    note: str | None = None
    text: str


class TensorCapture(BaseModel):
    """The body of POST /api/tensors (what `debug.build_payload` makes)."""

    name: str = Field(min_length=1, max_length=300)
    kind: Literal["tensor", "attention"]
    summary: TensorSummary
    view: dict[str, Any] = Field(default_factory=dict)
    arrays: dict[Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")], ArrayData] = Field(
        default_factory=dict, max_length=16)


class TensorInfo(BaseModel):
    id: str
    name: str
    kind: Literal["tensor", "attention"]
    created_at: float
    bytes: int = Field(description="size of the capture as it was sent")
    summary: TensorSummary


class TensorList(BaseModel):
    tensors: list[TensorInfo]


class TensorDetail(TensorInfo):
    view: dict[str, Any]
    arrays: dict[str, ArrayData]
