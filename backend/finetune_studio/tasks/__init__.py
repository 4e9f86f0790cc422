"""One module per task, each a `Task`: the same few functions, which the worker calls top to bottom.

    prepare(spec) -> Prepared        data -> tokenized datasets, model, collator, metrics
    describe_rows(spec, rows) -> [(text, label)]   the training file's rows, for the step-batch view

and, for `data.load_data` (shared by every task and by `check_data` at submit):

    read(path, data) -> Dataset      one data file as a table
    columns(data) -> {key: column}   the `[data]` column keys the task reads
    check_rows(table, path, data)    each row's values, errors naming the row
    label_names(train, eval, data)   the classes, for tasks that have them

Tokenized datasets carry an `fts_row` column (the row of the training file) that the recording trainer
takes out of each batch before the model sees it (see `batches.py`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import DataError, FieldProblem
from ..spec import DataSpec, JobSpec

EVAL_SAMPLES = 5  # predictions each evaluation keeps next to their references (eval_details()["samples"])
IGNORED = -100  # the label id that the loss (and the metrics) skip

_MODULES = {
    "text-classification": "text_classification",
    "token-classification": "token_classification",
    "question-answering": "question_answering",
    "seq2seq": "seq2seq",
    "causal-lm": "causal_lm",
}


@dataclass
class Prepared:
    model: Any
    tokenizer: Any
    train_dataset: Any
    eval_dataset: Any | None
    data_collator: Callable[..., Any]
    compute_metrics: Callable[[Any], dict[str, float]] | None = None
    trainer_class: type | None = None  # default: transformers.Trainer
    training_args: dict[str, Any] = field(default_factory=dict)  # task-specific TrainingArguments
    eval_details: Callable[[], dict[str, Any]] | None = None  # extra data for the eval event
    preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None


class Task(Protocol):
    """What `load_task` returns: a module of this package."""

    def read(self, path: str, data: DataSpec) -> Any: ...
    def columns(self, data: DataSpec) -> dict[str, str | None]: ...
    def check_rows(self, table: Any, path: str, data: DataSpec) -> None: ...
    def label_names(self, train: Any, evaluation: Any | None, data: DataSpec) -> list[str] | None: ...
    def prepare(self, spec: JobSpec) -> Prepared: ...
    def describe_rows(self, spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]: ...


if TYPE_CHECKING:  # mypy checks here that every task module is a Task
    from . import causal_lm, question_answering, seq2seq, text_classification, token_classification

    _ALL: tuple[Task, ...] = (text_classification, token_classification, question_answering, seq2seq, causal_lm)


def load_task(name: str) -> Task:
    return cast(Task, importlib.import_module(f"{__name__}.{_MODULES[name]}"))


def check_data(spec: JobSpec) -> list[FieldProblem]:
    """The data problems a job would meet in the worker, each naming its field (`data.label_column`): for
    the 422 at submit. Reads the files through the same cache as the tasks."""
    from .data import problems

    return problems(spec)


def load_tokenizer(spec: JobSpec, fast_for: str | None = None) -> Any:
    """The model folder's tokenizer; `fast_for` says what needs a fast one (offsets, word ids)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    if fast_for is not None and not tokenizer.is_fast:
        raise DataError(f"{spec.model}: its tokenizer is not a fast one, so {fast_for}",
                        hint="give a model folder with a tokenizer.json (a fast tokenizer)")
    return tokenizer


def first(outputs: Any) -> Any:
    """The logits (or generated ids) of model outputs that may come as a tuple (logits, hidden states...)."""
    return outputs[0] if isinstance(outputs, tuple) else outputs
