"""Domain errors: every one names the value and the fix. The server maps them to HTTP once
(`server.py`), the worker turns them into a job's `error {type, message, hint}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class StudioError(Exception):
    """Base of all errors that a user can act on."""

    status_code = 400
    type = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str | None]:
        return {"type": self.type, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class FieldProblem:
    """One problem of a job spec: `field` is dotted (`training.learning_rate`)."""

    field: str
    message: str


class SpecError(StudioError):
    """The job spec is invalid; `problems` names each field."""

    status_code = 422
    type = "invalid_spec"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        text = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
        super().__init__(text, hint="fix the named fields of finetune.toml (or the form) and submit again")


class DataError(StudioError):
    """The data does not fit the task: a missing column, an empty split, a bad row. `field` names the key of
    the spec to blame (`data.label_column`), for the 422 at submit; the worker raises the same errors."""

    type = "data_error"

    def __init__(self, message: str, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field

    def to_problem(self) -> FieldProblem:
        return FieldProblem(self.field or "data", f"{self.message}; {self.hint}" if self.hint else self.message)


class NotFound(StudioError):
    status_code = 404
    type = "not_found"


class Conflict(StudioError):
    """The request does not fit the job's state (resume a running job, delete a running job...)."""

    status_code = 409
    type = "conflict"


class TooLarge(StudioError):
    status_code = 413
    type = "too_large"


class Unsupported(StudioError):
    """Asked for something this machine cannot do (4-bit on a CPU, more GPUs than exist...)."""

    status_code = 422
    type = "unsupported"


class ApiError(StudioError):
    """An error answer of the server as a client sees it (`client.py`), with its detail."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        detail = body.get("detail")
        if isinstance(detail, list):
            detail = "; ".join(f"{d.get('field') or '.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
                               for d in detail)
        super().__init__(str(detail), body.get("hint"))
        self.status = status
        self.body = body
