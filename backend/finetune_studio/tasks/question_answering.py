"""Extractive question answering: AutoModelForQuestionAnswering points at the answer's span in a context.

Data: SQuAD-style, either the SQuAD JSON file (`{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}`)
or a table (JSONL, JSON, parquet) with a question, a context and `answers: {"text": [...],
"answer_start": [...]}` per row (`answer_start` counts characters from 0). An answer that is not in its
context at `answer_start` is an error naming the row; a row without answers (SQuAD 2) trains the model to
point at the first token, and then the model may answer "" at evaluation.

A context longer than `max_length` is split into windows that overlap by `doc_stride` tokens; each window
is one feature, labelled with the answer's first and last token where the window holds the whole answer
(found through the tokenizer's offset mapping) and with the first token where it does not. At evaluation
the best span over all windows of a question (start logit + end logit, at most 30 tokens, inside the
context) is mapped back to the context's text. Metrics: exact match and token F1 after SQuAD's
normalisation (lower case, no punctuation or articles), the best over the reference answers.
"""

from __future__ import annotations

import collections
import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import lora
from ..errors import DataError
from ..spec import DataSpec, JobSpec
from . import EVAL_SAMPLES, Prepared, load_tokenizer
from .data import load_data, load_table, read_text, training_table

MAX_ANSWER_TOKENS = 30
N_BEST = 20  # start and end candidates per window


def _squad_rows(path: str, data: DataSpec) -> list[dict[str, Any]] | None:
    """The rows of a SQuAD JSON file (articles -> paragraphs -> qas); None for any other file."""
    if Path(path).suffix.lower() != ".json":
        return None
    try:
        document = json.loads(read_text(path))
    except json.JSONDecodeError:
        return None  # JSON lines: a table
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        return None
    rows: list[dict[str, Any]] = []
    for number, article in enumerate(document["data"]):
        try:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = qa.get("answers", [])
                    rows.append({"id": str(qa.get("id", len(rows))), data.context_column: paragraph["context"],
                                 data.question_column: qa["question"], data.answers_column: {
                                     "text": [a["text"] for a in answers],
                                     "answer_start": [a["answer_start"] for a in answers]}})
        except (KeyError, TypeError) as error:
            raise DataError(f"{path}: data[{number}] is not a SQuAD article (missing {error})",
                            hint="each article holds paragraphs: [{context, qas: [{question, answers: "
                                 "[{text, answer_start}]}]}]") from None
    if not rows:
        raise DataError(f"{path} has no questions", hint="give a file with at least one question")
    return rows


def read(path: str, data: DataSpec) -> Any:
    import datasets

    rows = _squad_rows(path, data)
    if rows is not None:
        return datasets.Dataset.from_list(rows)
    return load_table(path, data.format)


def columns(data: DataSpec) -> dict[str, str | None]:
    return {"question_column": data.question_column, "context_column": data.context_column,
            "answers_column": data.answers_column}


def label_names(train: Any, evaluation: Any | None, data: DataSpec) -> None:
    return None  # no classes: an answer is a span of its context


def answers_of(value: Any) -> tuple[list[str], list[int]]:
    """(texts, starts) from `{"text": [...], "answer_start": [...]}`, a list of `{text, answer_start}`, or
    one `{text: str, answer_start: int}`."""
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
        if isinstance(texts, str):
            texts, starts = [texts], [starts]
    elif isinstance(value, list):
        texts = [a.get("text") for a in value if isinstance(a, dict)]
        starts = [a.get("answer_start") for a in value if isinstance(a, dict)]
    else:
        raise ValueError(f"answers must be {{\"text\": [...], \"answer_start\": [...]}}, got {value!r}")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise ValueError(f"answers need as many answer_start as text, got {value!r}")
    return [str(t) for t in texts], [int(s) for s in starts]


def check_rows(split: Any, path: str, data: DataSpec) -> None:
    """Every question and context is text and every answer is in its context at answer_start."""
    rows = zip(split[data.question_column], split[data.context_column], split[data.answers_column], strict=True)
    for row, (question, context, answers) in enumerate(rows):
        where = f"{path}, row {row + 1}"
        for key, value in (("question_column", question), ("context_column", context)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: the {key.removesuffix('_column')} is empty",
                                hint="give every row a question and a context")
        try:
            texts, starts = answers_of(answers)
        except (ValueError, TypeError) as error:
            raise DataError(f"{where}: {error}", hint="write answers as {\"text\": [\"...\"], "
                                                      "\"answer_start\": [character offset]}") from None
        for text, start in zip(texts, starts, strict=True):
            if not text or context[start:start + len(text)] != text:
                found = context.find(text) if text else -1
                raise DataError(
                    f"{where}: the answer {text!r} does not occur in the context at answer_start {start} "
                    f"(the context has {context[start:start + len(text)]!r} there)",
                    hint=(f"it occurs at {found}: answer_start counts characters from 0" if found >= 0 else
                          "the answer must be a span of the context, copied exactly"))


def tokenize_features(tokenizer: Any, questions: list[str], contexts: list[str],
                      answers: list[tuple[list[str], list[int]]], max_length: int, stride: int) -> dict[str, Any]:
    """Windows of each (question, context) pair: model inputs, `start_positions`/`end_positions` of the
    first answer (0 where the window misses it), `example_index` (position in the lists) and
    `offset_mapping` (the context characters of each token; None outside the context)."""
    questions = [q.lstrip() for q in questions]  # leading spaces only waste window room
    encoded = tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
    starts, ends, offsets = [], [], []
    for i, window in enumerate(encoded["offset_mapping"]):
        sequence = encoded.sequence_ids(i)
        inside = [k for k, s in enumerate(sequence) if s == 1]
        texts, answer_starts = answers[encoded["overflow_to_sample_mapping"][i]]
        start = end = 0
        if texts and inside:
            first_char, last_char = answer_starts[0], answer_starts[0] + len(texts[0])
            first, last = inside[0], inside[-1]
            if window[first][0] <= first_char and window[last][1] >= last_char:
                start, end = first, last
                while start <= last and window[start][1] <= first_char:
                    start += 1
                while end >= first and window[end][0] >= last_char:
                    end -= 1
        starts.append(start)
        ends.append(end)
        offsets.append([tuple(o) if s == 1 else None for o, s in zip(window, sequence, strict=True)])
    features = {k: v for k, v in encoded.items() if k not in ("offset_mapping", "overflow_to_sample_mapping")}
    return dict(features, start_positions=starts, end_positions=ends,
                example_index=list(encoded["overflow_to_sample_mapping"]), offset_mapping=offsets)


def best_answers(start_logits: Any, end_logits: Any, example_index: list[int],
                 offsets: list[list[tuple[int, int] | None]], contexts: list[str],
                 allow_empty: bool = False) -> list[str]:
    """The best span of each example's context over all its windows; "" where `allow_empty` and the first
    token (no answer) scores higher than any span."""
    best: dict[int, tuple[float, str]] = {}
    empty: dict[int, float] = {}
    for feature, example in enumerate(example_index):
        window = offsets[feature]
        start_row = np.asarray(start_logits[feature][:len(window)], dtype=np.float64)
        end_row = np.asarray(end_logits[feature][:len(window)], dtype=np.float64)
        empty[example] = min(empty.get(example, np.inf), float(start_row[0] + end_row[0]))
        for s in np.argsort(start_row)[::-1][:N_BEST]:
            for e in np.argsort(end_row)[::-1][:N_BEST]:
                if window[s] is None or window[e] is None or e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                    continue
                score = float(start_row[s] + end_row[e])
                if example not in best or score > best[example][0]:
                    best[example] = (score, contexts[example][window[s][0]:window[e][1]])
    answers = []
    for example in range(len(contexts)):
        score, text = best.get(example, (-np.inf, ""))
        answers.append("" if allow_empty and empty.get(example, -np.inf) > score else text)
    return answers


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def answer_f1(prediction: str, reference: str) -> float:
    predicted, true = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not true:
        return float(predicted == true)
    common = sum((collections.Counter(predicted) & collections.Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: list[str], references: list[list[str]]) -> tuple[float, float]:
    """(exact match, F1), each the mean over questions of the best over that question's references."""
    exact, f1 = [], []
    for prediction, golds in zip(predictions, references, strict=True):
        golds = golds or [""]
        exact.append(max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds))
        f1.append(max(answer_f1(prediction, g) for g in golds))
    return float(np.mean(exact)) if exact else 0.0, float(np.mean(f1)) if f1 else 0.0


def metrics(evaluation: Any, with_offsets: Any, data: DataSpec,
            details: dict[str, Any]) -> Callable[[Any], dict[str, float]]:
    """Exact match and F1 of the best span of each eval question (over its windows); samples to `details`."""
    example_index, offsets = with_offsets["example_index"], with_offsets["offset_mapping"]
    contexts, questions = evaluation[data.context_column], evaluation[data.question_column]
    references = [answers_of(a)[0] for a in evaluation[data.answers_column]]
    allow_empty = any(not golds for golds in references)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        start_logits, end_logits = prediction.predictions[:2]
        predicted = best_answers(start_logits, end_logits, example_index, offsets, contexts, allow_empty)
        exact, f1 = squad_scores(predicted, references)
        details["samples"] = [
            {"input": questions[i], "prediction": predicted[i],
             "reference": " | ".join(dict.fromkeys(references[i])) or "(no answer)"}
            for i in range(min(EVAL_SAMPLES, len(predicted)))]
        return {"exact_match": exact, "f1": f1}

    return compute_metrics


def prepare(spec: JobSpec) -> Prepared:
    from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

    data = spec.data
    loaded = load_data(spec)
    tokenizer = load_tokenizer(spec, fast_for="answers cannot be mapped to tokens")
    model = AutoModelForQuestionAnswering.from_pretrained(spec.model, **lora.model_kwargs(spec))
    room = data.max_length - tokenizer.num_special_tokens_to_add(pair=True)

    def encode(batch: dict[str, list[Any]], indices: list[int], path: str) -> dict[str, Any]:
        questions = batch[data.question_column]
        for offset, ids in enumerate(tokenizer(questions, add_special_tokens=False)["input_ids"]):
            if room - len(ids) <= data.doc_stride:
                raise DataError(
                    f"{path}, row {batch['fts_row'][offset] + 1}: the question takes {len(ids)} of the "
                    f"{data.max_length} tokens (data.max_length), which leaves no more than data.doc_stride "
                    f"({data.doc_stride}) for the context", hint="raise data.max_length or lower data.doc_stride")
        features = tokenize_features(tokenizer, questions, batch[data.context_column],
                                     [answers_of(a) for a in batch[data.answers_column]], data.max_length,
                                     data.doc_stride)
        features["fts_row"] = [batch["fts_row"][i] for i in features["example_index"]]
        features["example_index"] = [indices[i] for i in features["example_index"]]
        return features

    def tokenize(split: Any, path: str) -> Any:
        return split.map(encode, batched=True, with_indices=True, remove_columns=split.column_names,
                         fn_kwargs={"path": path}, desc="tokenizing")

    mapping_columns = ["example_index", "offset_mapping"]  # for compute_metrics; the model must not see them
    details: dict[str, Any] = {}
    eval_features = compute_metrics = None
    if loaded.evaluation is not None:
        with_offsets = tokenize(loaded.evaluation, data.eval or data.train)
        eval_features = with_offsets.remove_columns(mapping_columns)
        compute_metrics = metrics(loaded.evaluation, with_offsets, data, details)
    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=tokenize(loaded.train, data.train).remove_columns(mapping_columns),
        eval_dataset=eval_features, data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics, training_args={"label_names": ["start_positions", "end_positions"]},
        eval_details=lambda: dict(details))


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    data = spec.data
    picked = training_table(spec).select(rows)
    columns = zip(picked[data.question_column], picked[data.context_column], picked[data.answers_column], strict=True)
    described: list[tuple[str, str | None]] = []
    for question, context, answers in columns:
        texts = answers_of(answers)[0]
        described.append((f"{question} ‖ {context}", texts[0] if texts else None))
    return described
