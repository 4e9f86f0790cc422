"""One module per task. Each exposes the same few functions, which the worker calls top to bottom:

    prepare(spec) -> Prepared        data -> tokenized datasets, model, collator, metrics
    describe_rows(spec, rows) -> [(text, label)]   the training file's rows, for the step-batch view

Tokenized datasets carry an `fts_row` column (the row of the training file) that the recording trainer
takes out of each batch before the model sees it (see `batches.py`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

EVAL_SAMPLES = 5  # predictions each evaluation keeps next to their references (eval_details()["samples"])

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


def load_task(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")
