"""A job's events: what a reporter sends (`ReporterEvent`, checked per type in pydantic-core, in an
`IngestBatch`), what the stream and the event listing give back (`StreamEvent`), an `Anomaly`, and the
body that opens an attached run (`RunCreate`)."""

from __future__ import annotations

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

from ..spec import JobSpec, storable
from .base import INT64_MAX, MAX_EVENTS, MAX_VALUES, Count, Finite, Int64, Name, ShortText, Text
from .jobs import JobError, Progress

EventType = Literal["metric", "progress", "eval", "system", "log", "state", "end", "anomaly"]


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
