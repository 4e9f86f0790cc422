"""Text classification: AutoModelForSequenceClassification on a text (and optional text-pair) column.

Labels may be strings (sorted into ids) or integers 0..N-1; the names travel in the saved config's
`id2label`. Padding is dynamic (per batch). Metrics: accuracy, macro precision/recall/F1, and the
confusion matrix with per-class figures for the dashboard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import lora
from ..errors import DataError
from ..spec import JobSpec
from . import EVAL_SAMPLES, Prepared
from .data import cached_table, load_table, require_columns, split_train_eval, with_rows


def _label_names(values: list[Any], path: str, column: str) -> list[str]:
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"{path}, row {row + 1}: the label ({column!r}) is empty",
                            hint="give every example a label, or remove the row")
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in distinct):
        numbers = [int(v) for v in distinct]
        if numbers != list(range(len(numbers))):
            raise DataError(
                f"{path}: integer labels in {column!r} must be 0..N-1; found {numbers[:20]}",
                hint="renumber the labels from 0 without gaps, or write them as strings (names)")
        return [str(n) for n in numbers]
    return [str(v) for v in distinct]


def prepare(spec: JobSpec) -> Prepared:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    data = spec.data
    table = load_table(data.train, data.format)
    columns = {"text_column": data.text_column, "label_column": data.label_column,
               "text_pair_column": data.text_pair_column}
    require_columns(table, data.train, **columns)
    train, evaluation = split_train_eval(with_rows(table), data.eval, data.eval_fraction,
                                         spec.training.seed, data.format)
    if evaluation is not None and data.eval is not None:
        require_columns(evaluation, data.eval, **columns)
        evaluation = with_rows(evaluation)
    names = _label_names(list(table[data.label_column]), data.train, data.label_column)
    label_to_id = {name: i for i, name in enumerate(names)}
    if evaluation is not None:
        unknown = sorted({str(v) for v in evaluation[data.label_column]} - set(names))
        if unknown:
            raise DataError(f"{data.eval or data.train}: eval labels {unknown[:10]} never occur in training",
                            hint="every eval label must also appear in the training data")

    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        spec.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_to_id,
        ignore_mismatched_sizes=True, **lora.model_kwargs(spec))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id

    def encode(batch: dict[str, list[Any]], path: str) -> dict[str, Any]:
        texts = batch[data.text_column]
        for offset, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}, row {batch['fts_row'][offset] + 1}: the text ({data.text_column!r}) "
                                "is empty", hint="remove empty rows or fill them in")
        pairs = batch[data.text_pair_column] if data.text_pair_column else None
        encoded = tokenizer(texts, pairs, truncation=True, max_length=data.max_length)
        encoded["labels"] = [label_to_id[str(v)] for v in batch[data.label_column]]
        encoded["fts_row"] = batch["fts_row"]
        return dict(encoded)

    def tokenize(split: Any, path: str) -> Any:
        return split.map(encode, batched=True, remove_columns=split.column_names, fn_kwargs={"path": path},
                         desc="tokenizing")

    details: dict[str, Any] = {}
    eval_texts = list(evaluation[data.text_column][:EVAL_SAMPLES]) if evaluation is not None else []

    def compute_metrics(prediction: Any) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.argmax(logits, axis=-1)
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

    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=tokenize(train, data.train),
        eval_dataset=tokenize(evaluation, data.eval or data.train) if evaluation is not None else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        eval_details=lambda: dict(details))


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    data = spec.data
    table = cached_table(data.train, data.format)
    picked = table.select(rows)
    texts = picked[data.text_column]
    pairs = picked[data.text_pair_column] if data.text_pair_column else [None] * len(rows)
    labels = picked[data.label_column]
    return [(text if pair is None else f"{text} ‖ {pair}", None if label is None else str(label))
            for text, pair, label in zip(texts, pairs, labels, strict=True)]
