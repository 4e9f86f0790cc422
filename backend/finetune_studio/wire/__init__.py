"""The wire contract: every JSON body the API sends or takes, besides the JobSpec (`spec.py`).

Mirrored by `plugin/.../core/Wire.kt` (and `Estimate.kt`, `Lineage.kt`) and the dashboard's JSDoc types;
`tests/test_wire.py` writes one example of each model into `tests/fixtures/wire/`, which the Kotlin tests
parse, so drift fails a test. Times are UNIX seconds (float). Non-finite floats go out as null (see `finite`
and `json_safe`). One module per concept: `base` (bounded types), `jobs`, `events`, `errors`, `estimate`,
`tensors`, `lineage`; import the names from here.
"""

from __future__ import annotations

from .base import INT64_MAX, MAX_EVENTS, MAX_VALUES, Count, Finite, Int64, Name, ShortText, Text, finite, json_safe
from .errors import ERROR_STATUSES, ErrorBody, Problem, error_responses, with_models
from .estimate import DeviceFit, Estimate, MemoryEstimate
from .events import (
    Anomaly,
    EventList,
    EventType,
    IngestBatch,
    IngestResult,
    ReporterEvent,
    RunCreate,
    StreamEvent,
)
from .jobs import (
    FINISHED_STATES,
    RESUMABLE_STATES,
    BatchExample,
    Device,
    EvalSample,
    Health,
    Job,
    JobError,
    JobList,
    JobState,
    LogLine,
    Logs,
    Metrics,
    Progress,
    Series,
    ServerInfo,
    StepBatch,
    SystemInfo,
)
from .lineage import (
    CodeState,
    DataChange,
    DataFile,
    FileChange,
    Lineage,
    LineageDiff,
    RowChange,
    ValueChange,
    WorktreeCheck,
)
from .tensors import (
    ArrayData,
    HistogramData,
    TensorCapture,
    TensorDetail,
    TensorInfo,
    TensorList,
    TensorSummary,
)

__all__ = [
    # base
    "INT64_MAX", "MAX_EVENTS", "MAX_VALUES", "Count", "Finite", "Int64", "Name", "ShortText", "Text", "finite",
    "json_safe",
    # jobs
    "FINISHED_STATES", "RESUMABLE_STATES", "BatchExample", "Device", "EvalSample", "Health", "Job", "JobError",
    "JobList", "JobState", "LogLine", "Logs", "Metrics", "Progress", "Series", "ServerInfo", "StepBatch",
    "SystemInfo",
    # events
    "Anomaly", "EventList", "EventType", "IngestBatch", "IngestResult", "ReporterEvent", "RunCreate", "StreamEvent",
    # errors
    "ERROR_STATUSES", "ErrorBody", "Problem", "error_responses", "with_models",
    # estimate
    "DeviceFit", "Estimate", "MemoryEstimate",
    # tensors
    "ArrayData", "HistogramData", "TensorCapture", "TensorDetail", "TensorInfo", "TensorList", "TensorSummary",
    # lineage
    "CodeState", "DataChange", "DataFile", "FileChange", "Lineage", "LineageDiff", "RowChange", "ValueChange",
    "WorktreeCheck",
]
