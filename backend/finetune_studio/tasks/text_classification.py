"""Text classification: AutoModelForSequenceClassification on a text (and optional text-pair) column.

Labels may be strings (sorted into ids) or integers 0..N-1; the names travel in the saved config's
`id2label`. Padding is dynamic (per batch). Metrics: accuracy, macro precision/recall/F1, and the
confusion matrix with per-class figures for the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import lora
from ..errors import DataError
from ..spec import DataSpec, JobSpec
from . import EVAL_SAMPLES, Prepared, first, load_tokenizer
from .data import load_data, read_table, training_table, unknown_eval_labels


def read(path: str, data: DataSpec) -> Any:
    return read_table(path, data)


def columns(data: DataSpec) -> dict[str, str | None]:
    return {"text_column": data.text_column, "label_column": data.label_column,
            "text_pair_column": data.text_pair_column}


def check_rows(table: Any, path: str, data: DataSpec) -> None:
    for row, text in enumerate(table[data.text_column]):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}, row {row + 1}: the text ({data.text_column!r}) is empty",
                            hint="remove empty rows or fill them in")


def label_names(train: Any, evaluation: Any | None, data: DataSpec) -> list[str]:
    """Sorted string labels, or integer labels 0..N-1 (as strings); at least two classes."""
    path, column = data.train, data.label_column
    values = list(train[column])
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"{path}, row {row + 1}: the label ({column!r}) is empty",
                            hint="give every example a label, or remove the row", field="data.label_column")
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    integers = [v for v in distinct if isinstance(v, int | np.integer) and not isinstance(v, bool)]
    if integers and len(integers) < len(distinct):
        others = [v for v in distinct if v not in integers]
        raise DataError(
            f"{path}: the labels in {column!r} mix integers {integers[:5]} and other values {others[:5]}",
            hint="write every label the same way: all names (strings), or all integers 0..N-1",
            field="data.label_column")
    if integers:
        numbers = [int(v) for v in distinct]
        if numbers != list(range(len(numbers))):
            raise DataError(
                f"{path}: integer labels in {column!r} must be 0..N-1; found {numbers[:20]}",
                hint="renumber the labels from 0 without gaps, or write them as strings (names)",
                field="data.label_column")
    names = [str(v) for v in distinct]
    if len(names) < 2:
        raise DataError(f"{path}: every label in {column!r} is {names[0]!r}: classification needs at least two classes",
                        hint="add examples of other classes, or set data.label_column to another column",
                        field="data.label_column")
    if evaluation is not None:
        unknown_eval_labels(names, {str(v) for v in evaluation[column]}, data.eval or path)
    return names


def metrics(names: list[str], eval_texts: list[str], details: dict[str, Any]) -> Callable[[Any], dict[str, float]]:
    """Accuracy and macro precision/recall/F1; the confusion matrix, per-class figures and samples go to
    `details`."""

    def compute_metrics(prediction: Any) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

        predicted = np.argmax(first(prediction.predictions), axis=-1)
        truth = prediction.label_ids
        ids = list(range(len(names)))
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, predicted, labels=ids, average="macro", zero_division=0)
        per_p, per_r, per_f, support = precision_recall_fscore_support(
            truth, predicted, labels=ids, average=None, zero_division=0)
        details.update(
            labels=names, confusion_matrix=confusion_matrix(truth, predicted, labels=ids).tolist(),
            per_class={n: {"precision": float(per_p[i]), "recall": float(per_r[i]), "f1": float(per_f[i]),
                           "support": int(support[i])} for i, n in enumerate(names)},
            samples=[{"input": text, "prediction": names[int(predicted[i])], "reference": names[int(truth[i])]}
                     for i, text in enumerate(eval_texts)])
        return {"accuracy": float(accuracy_score(truth, predicted)), "precision": float(precision),
                "recall": float(recall), "f1": float(f1)}

    return compute_metrics


def prepare(spec: JobSpec) -> Prepared:
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    data = spec.data
    loaded = load_data(spec)
    names = loaded.names or []
    label_to_id = {name: i for i, name in enumerate(names)}

    tokenizer = load_tokenizer(spec)
    model = AutoModelForSequenceClassification.from_pretrained(
        spec.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_to_id,
        ignore_mismatched_sizes=True, **lora.model_kwargs(spec))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        pairs = batch[data.text_pair_column] if data.text_pair_column else None
        encoded = tokenizer(batch[data.text_column], pairs, truncation=True, max_length=data.max_length)
        encoded["labels"] = [label_to_id[str(v)] for v in batch[data.label_column]]
        encoded["fts_row"] = batch["fts_row"]
        return dict(encoded)

    def tokenize(split: Any) -> Any:
        return split.map(encode, batched=True, remove_columns=split.column_names, desc="tokenizing")

    details: dict[str, Any] = {}
    evaluation = loaded.evaluation
    eval_texts = list(evaluation[data.text_column][:EVAL_SAMPLES]) if evaluation is not None else []
    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=tokenize(loaded.train),
        eval_dataset=tokenize(evaluation) if evaluation is not None else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics(names, eval_texts, details),
        eval_details=lambda: dict(details))


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    data = spec.data
    picked = training_table(spec).select(rows)
    texts = picked[data.text_column]
    pairs = picked[data.text_pair_column] if data.text_pair_column else [None] * len(rows)
    labels = picked[data.label_column]
    return [(text if pair is None else f"{text} ‖ {pair}", None if label is None else str(label))
            for text, pair, label in zip(texts, pairs, labels, strict=True)]
