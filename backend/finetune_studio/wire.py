"""The wire contract: every JSON body the API sends or takes, besides the JobSpec (`spec.py`).

Mirrored by `plugin/.../core/Wire.kt` and the dashboard's JSDoc types; `tests/test_wire.py` writes one
example of each model into `tests/fixtures/wire/`, which the Kotlin tests parse, so drift fails a test.
Times are UNIX seconds (float). Non-finite floats go out as null (see `finite` and `json_safe`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from typing_extensions import TypedDict

from .spec import JobSpec, storable

JobState = Literal["queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted"]
FINISHED_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "interrupted"})
RESUMABLE_STATES: frozenset[str] = frozenset({"failed", "cancelled", "interrupted"})
EventType = Literal["metric", "progress", "eval", "system", "log", "state", "end", "anomaly"]

# What the API takes is bounded and storable: integers fit SQLite's signed 64 bits (a larger one made the
# store raise OverflowError: a 500), floats are finite, strings are valid Unicode and not huge.
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable)]
Text = Annotated[str, Field(max_length=1 << 20), AfterValidator(storable)]  # a log line: logtail's MAX_LINE
ShortText = Annotated[str, Field(max_length=16_384), AfterValidator(storable)]
MAX_VALUES = 1000  # values of one metric, eval or system event
MAX_EVENTS = 10_000  # events of one reporter batch (the reporter sends at most 1000 at a time)


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


class StreamEvent(BaseModel):
    """One event of a job's SSE stream: `seq` is the SSE id; `data` depends on `type`:
    metric {step, values: {name: value}}, progress Progress, eval {step, values, confusion_matrix?,
    labels?}, system {values}, log LogLine, state Job."""

    seq: int
    type: EventType
    time: float
    data: dict[str, Any]


# A value's name. A length-checked string holding a lone surrogate is refused by pydantic-core itself ("unable
# to parse raw data as a unicode string"): no Python call (`storable`) per name of every metric event.
_ValueName = Annotated[str, Field(min_length=1, max_length=200)]
_ValueMap = Annotated[dict[_ValueName, Finite | None], Field(max_length=MAX_VALUES)]


# The data of the frequent events are TypedDicts: checked in pydantic-core, they come out as plain dicts
# (no model to build and dump again per event), and their strings are checked by their own types.
class _Values(TypedDict):
    """The data of a `metric` or `system` event."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    step: Count
    values: _ValueMap


class _EvalValues(BaseModel):
    """An `eval` event: values and the task's details (samples, confusion_matrix, labels, per_class...)."""

    model_config = ConfigDict(extra="allow")
    step: Count
    values: _ValueMap


class _LogData(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    stream: Literal["stdout", "stderr"]
    text: Text


class _EndData(BaseModel):
    """How an attached run ended."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["completed", "failed", "cancelled", "interrupted"]
    error: JobError | None = None


class Anomaly(BaseModel):
    """An `anomaly` event (`anomaly.py`): what fired at which step, and the batch's training rows."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["nan", "spike", "grad_spike"]
    step: Count
    value: Finite | None = Field(None, description="null when not a finite number")
    threshold: Finite | None = None
    detail: Text
    rows: list[Count] = Field(default_factory=list, max_length=100_000, description="rows of the training file")
    saved_to: Text | None = Field(None, description="where the batch was saved (no debugger attached)")


class EventList(BaseModel):
    """`GET /api/jobs/{id}/events?types=`: a job's stored events, oldest first."""

    events: list[StreamEvent]


_DATA = {name: TypeAdapter(model).validator  # pydantic-core's own, without TypeAdapter's Python per call
         for name, model in (("metric", _Values), ("system", _Values), ("eval", _EvalValues), ("progress", Progress),
                             ("log", _LogData), ("end", _EndData), ("anomaly", Anomaly))}
_SELF_CHECKED = frozenset({"metric", "system", "log"})  # every string in their data is length-checked


class ReporterEvent(BaseModel):
    """What a reporter sends; `seq` counts per attempt from 1. `data` is checked per type, so nothing the
    store or a listing cannot read is stored (a progress `step` of "abc" once made every listing fail)."""

    seq: int = Field(ge=1, le=INT64_MAX)
    type: Literal["metric", "progress", "eval", "system", "log", "end", "anomaly"]
    time: Finite
    data: dict[str, Any] = Field(description="metric and system {step, values: {name: number | null}}; eval the "
                                 "same and the task's details; progress Progress; log {stream, text}; "
                                 "end (attached runs) {state, error?}; anomaly Anomaly")

    @field_validator("data")
    @classmethod
    def _data_fits_type(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        type_ = info.data.get("type")
        if type_ is None:  # the type was refused: that error is the one to report
            return data
        if type_ not in _SELF_CHECKED:
            storable(data)  # the details of an eval event are free-form JSON: no lone surrogates there either
        try:
            checked = _DATA[type_].validate_python(data)
        except ValidationError as error:
            problems = "; ".join(f"data.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            # a name with a lone surrogate is named as \udxxx: the answer must be valid UTF-8
            problems = problems.encode("utf-8", "backslashreplace").decode("utf-8")
            raise ValueError(f"a {type_} event: {problems}") from None
        if isinstance(checked, BaseModel):  # as sent, types checked
            return checked.model_dump(mode="json", exclude_unset=True)
        return checked  # type: ignore[no-any-return]


class IngestBatch(BaseModel):
    attempt: int = Field(ge=1, le=INT64_MAX)
    events: list[ReporterEvent] = Field(max_length=MAX_EVENTS)


class IngestResult(BaseModel):
    accepted: int
    duplicates: int


class RunCreate(BaseModel):
    """Open an attached run: a user's own script reporting through StudioCallback."""

    name: Name = "attached run"
    task: Name = "custom"
    output_dir: Annotated[str, Field(max_length=4096), AfterValidator(storable)] = ""
    training_args: dict[Name, ShortText | Int64 | Finite | bool | None] = Field(
        default_factory=dict, max_length=1000, description="the script's TrainingArguments (scalar values)")
    pid: int | None = Field(None, ge=1, le=2**31 - 1,
                            description="the script's process: if it dies, the run is interrupted")
    device: ShortText | None = Field(None, description="where it trains: cpu, cuda:0, mps...")
    spec: JobSpec | None = Field(None, description="`finetune-studio train`: the job spec it runs in-process "
                                 "(the run then gets a job folder, its batches and anomalies recorded there)")


class Problem(BaseModel):
    """One problem of a request: `field` is dotted (`training.learning_rate`, `events.0.data.step`)."""

    loc: list[str | int]
    field: str
    msg: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every error answer of the API: `detail` is a message, or (422) the problems, each naming its field."""

    detail: str | list[Problem]
    type: str = Field(description="unauthorized, forbidden_host, forbidden_origin, too_large, "
                      "unsupported_media_type, invalid_request, invalid_spec, not_found, conflict, unsupported...")
    hint: str | None = None


ERROR_STATUSES: dict[int, str] = {
    400: "a body that is not JSON, or a value the route cannot use (a capture's array that does not fit its "
         "shape)",
    401: "missing or wrong token (`Authorization: Bearer <token>` or the dashboard's cookie)",
    403: "a Host that is not loopback, or a change requested from another origin",
    404: "no such job or capture",
    409: "the request does not fit the job's state",
    413: "the body is over this route's limit",
    415: "a body that is not application/json",
    422: "a body or parameter that does not fit (each problem names its field)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: the error statuses it may answer, each with the ErrorBody."""
    return {status: {"model": ErrorBody, "description": ERROR_STATUSES[status]} for status in statuses}


def with_models(schema: dict[str, Any], *models: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI document with `models` (and the models they use) among its components: for the bodies
    that a route reads itself and declares with a `$ref` (`openapi_extra`)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    return schema


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


# -- the estimate (issue 16, `POST /api/estimate`; computed by estimate.py) ----------------------------
class MemoryEstimate(BaseModel):
    """Bytes at the peak of a job on one device. A training step holds the gradients and the activations;
    an evaluation step (no gradients: the optimizer freed them) its batch's transient tensors and the
    predictions gathered so far; the peak is the larger of the two, over weights, optimizer and runtime."""

    weights: int
    gradients: int
    optimizer: int = Field(description="AdamW's two states per trainable parameter")
    activations: int = Field(description="kept for the backward pass, at the spec's batch size")
    evaluation: int = Field(0, description="an evaluation step at eval_batch_size (no gradients then): its "
                            "tensors and the predictions kept for the metrics; 0 without evaluation")
    runtime: int = Field(description="a worker before its model: imports (CPU) or the CUDA context (GPU)")
    total: int = Field(description="weights + optimizer + runtime + max(gradients + activations, evaluation)")


class DeviceFit(BaseModel):
    name: str
    kind: Literal["cuda", "cpu", "mps"]
    index: int | None = None
    memory: int = Field(description="bytes the job may use: the GPU's memory, or the RAM available now")
    fits: bool
    max_batch_size: int = Field(description="the largest training.batch_size that fits (0: none)")


class Estimate(BaseModel):
    """The answer of POST /api/estimate: will the spec fit on this machine, and how long an epoch takes."""

    architecture: str
    parameters: int
    trainable_parameters: int
    precision: Literal["fp32", "bf16", "fp16"]
    batch_size: int
    sequence_length: int = Field(description="tokens of the longest example (capped at data.max_length)")
    memory: MemoryEstimate
    devices: list[DeviceFit]
    fits: bool
    max_batch_size: int
    examples: int | None = Field(None, description="training examples per epoch (windows, blocks)")
    tokens_per_epoch: int | None = Field(None, description="tokens the model sees per epoch, padding included")
    steps_per_epoch: int | None = None
    seconds_per_epoch: float | None = Field(None, description="training and the epoch's evaluations")
    seconds_total: float | None = None
    warning: str | None = None
    suggestion: str | None = None
    suggested: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="the settings of the suggestion: dotted spec key -> value")
    notes: list[str] = Field(default_factory=list)


# -- captured tensors (`POST/GET /api/tensors`; the payload is described in docs/tensors.md) -----------
class ArrayData(BaseModel):
    """A float32 array: little-endian bytes, row-major, in base64 (NaN and ±inf survive)."""

    dtype: Literal["float32"] = "float32"
    shape: list[Annotated[int, Field(ge=0, le=INT64_MAX)]] = Field(max_length=64)
    data: str


class HistogramData(BaseModel):
    edges: list[Finite | None] = Field(max_length=10_001)
    counts: list[Count] = Field(max_length=10_000)
    sample_size: Count
    sampled: bool


class TensorSummary(BaseModel):
    """Mirrors `tensors.Summary`; non-finite floats travel as null."""

    kind: Name
    shape: list[Count] = Field(max_length=64)
    dtype: Name
    device: Name
    numel: Count
    bytes: Count
    requires_grad: bool = False
    min: Finite | None = None
    max: Finite | None = None
    mean: Finite | None = None
    std: Finite | None = None
    nan: Count | None = None
    posinf: Count | None = None
    neginf: Count | None = None
    zeros: Count | None = None
    histogram: HistogramData | None = None
    note: ShortText | None = None
    text: ShortText


class TensorCapture(BaseModel):
    """The body of POST /api/tensors (what `debug.build_payload` makes)."""

    name: Annotated[str, Field(min_length=1, max_length=300), AfterValidator(storable)]
    kind: Literal["tensor", "attention"]
    summary: TensorSummary
    view: Annotated[dict[str, Any], AfterValidator(storable), AfterValidator(json_safe)] = Field(
        default_factory=dict, description="how the dashboard shows it (docs/tensors.md); non-finite numbers "
                                          "are stored as null")
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
    tensors: list[TensorInfo] = Field(description="newest first")
    next: int | None = Field(None, description="the cursor of the next page (ask with ?before=next); null on "
                             "the last")


class TensorDetail(TensorInfo):
    view: dict[str, Any]
    arrays: dict[str, ArrayData]


# -- lineage (issue 16; Kotlin twins in Lineage.kt): what a run came from, what changed, and since -----
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
