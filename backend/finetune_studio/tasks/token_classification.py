"""Token classification (NER): AutoModelForTokenClassification on words and their tags.

Data: CoNLL-style text (one token per line with its tag last, whitespace between; a blank line between
sentences; `-DOCSTART-` lines skipped), read when `data.format = "conll"` or the file ends in .conll or
.txt; or a table (JSONL, JSON, parquet) with a list of words (`tokens_column`) and a list of tags
(`tags_column`) per row. Tags are strings (BIO: `B-PER`, `I-PER`, `O`); their names travel in the saved
config's `id2label`. Each word's first sub-word carries its tag; later sub-words and special tokens get
-100, which the loss ignores. Metrics: entity-level precision, recall and F1 (seqeval), overall and per
entity type, and token accuracy; the samples show the entities found next to the true ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import lora
from ..errors import DataError
from ..spec import DataSpec, JobSpec
from . import EVAL_SAMPLES, IGNORED, Prepared, first, load_tokenizer
from .data import load_data, load_table, read_text, training_table, unknown_eval_labels

CONLL_SUFFIXES = (".conll", ".txt")


def is_conll(path: str, format: str) -> bool:
    return format == "conll" or (format == "auto" and Path(path).suffix.lower() in CONLL_SUFFIXES)


def read_conll(path: str) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of a CoNLL file: (tokens, tags) per sentence; the tag is the last field of a line."""
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append(words)
                tags.append(labels)
                words, labels = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{path}, line {number}: {line.strip()!r} has a token but no tag",
                            hint="write each token and its tag on one line, separated by a tab or a space "
                                 "(e.g. \"Paris\\tB-LOC\"), and a blank line between sentences")
        words.append(fields[0])
        labels.append(fields[-1])
    if words:
        sentences.append(words)
        tags.append(labels)
    if not sentences:
        raise DataError(f"{path} has no sentences", hint="give a file with at least one tagged sentence")
    return sentences, tags


def read(path: str, data: DataSpec) -> Any:
    """The file as a `datasets.Dataset` with the spec's tokens and tags columns, one row per sentence."""
    import datasets

    if is_conll(path, data.format):
        tokens, tags = read_conll(path)
        return datasets.Dataset.from_dict({data.tokens_column: tokens, data.tags_column: tags})
    return load_table(path, data.format)


def columns(data: DataSpec) -> dict[str, str | None]:
    return {"tokens_column": data.tokens_column, "tags_column": data.tags_column}


def check_rows(split: Any, path: str, data: DataSpec) -> None:
    for row, (tokens, tags) in enumerate(zip(split[data.tokens_column], split[data.tags_column], strict=True)):
        where = f"{path}, row {row + 1}"
        if not isinstance(tokens, list) or not tokens:
            raise DataError(f"{where}: {data.tokens_column!r} must be a non-empty list of words, got {tokens!r}",
                            hint="write each row as {\"tokens\": [\"Ada\", \"lives\", ...], \"tags\": [...]}")
        if not isinstance(tags, list) or len(tags) != len(tokens):
            count = len(tags) if isinstance(tags, list) else "no"
            raise DataError(f"{where}: {len(tokens)} tokens but {count} tags",
                            hint="give exactly one tag per token")
        bad = [t for t in tags if not isinstance(t, str) or not t.strip()]
        if bad:
            raise DataError(f"{where}: the tag {bad[0]!r} is not a tag name",
                            hint="write tags as names such as \"B-PER\", \"I-PER\" and \"O\" (BIO)")


def tag_names(tags: list[list[str]]) -> list[str]:
    """Every tag, "O" first, then sorted: B-X before I-X, entity types in alphabetical order."""
    distinct = {tag for sentence in tags for tag in sentence}
    return sorted(distinct, key=lambda tag: (tag != "O", tag[2:] if tag[1:2] == "-" else tag, tag))


def label_names(train: Any, evaluation: Any | None, data: DataSpec) -> list[str]:
    names = tag_names(train[data.tags_column])
    if evaluation is not None:
        eval_tags = {tag for sentence in evaluation[data.tags_column] for tag in sentence}
        unknown_eval_labels(names, eval_tags, data.eval or data.train, what="tags")
    return names


def align_labels(word_ids: list[int | None], word_labels: list[int]) -> list[int]:
    """One label per sub-word: a word's first sub-word carries the word's label, the rest and the special
    tokens (word id None) get -100."""
    labels = []
    previous = None
    for word in word_ids:
        labels.append(IGNORED if word is None or word == previous else word_labels[word])
        previous = word
    return labels


def entities(words: list[str], tags: list[str]) -> str:
    """"PER: Ada Lovelace; LOC: London", or "(none)": how a sample shows a sentence's entities."""
    from seqeval.metrics.sequence_labeling import get_entities

    found = [f"{kind}: {' '.join(words[start:end + 1])}" for kind, start, end in get_entities(tags)]
    return "; ".join(found) if found else "(none)"


def metrics(names: list[str], eval_words: list[list[str]],
            details: dict[str, Any]) -> Callable[[Any], dict[str, float]]:
    """Entity-level precision, recall and F1 and token accuracy; per-class figures and samples to `details`."""

    def compute_metrics(prediction: Any) -> dict[str, float]:
        from seqeval.metrics import accuracy_score, classification_report

        predicted_ids, label_ids = prediction.predictions, prediction.label_ids
        truth, guess = [], []
        for predicted_row, label_row in zip(predicted_ids, label_ids, strict=True):
            kept = label_row != IGNORED
            truth.append([names[i] for i in label_row[kept]])
            guess.append([names[i] for i in predicted_row[kept]])
        report = classification_report(truth, guess, output_dict=True, zero_division=0)
        kinds = sorted(k for k in report if not k.endswith(" avg"))
        details.update(
            labels=kinds,
            per_class={k: {"precision": float(report[k]["precision"]), "recall": float(report[k]["recall"]),
                           "f1": float(report[k]["f1-score"]), "support": int(report[k]["support"])}
                       for k in kinds},
            samples=[{"input": " ".join(words), "prediction": entities(words, guess[i]),
                      "reference": entities(words, truth[i])} for i, words in enumerate(eval_words)])
        overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        return {"precision": float(overall["precision"]), "recall": float(overall["recall"]),
                "f1": float(overall["f1-score"]), "accuracy": float(accuracy_score(truth, guess))}

    return compute_metrics


def argmax(logits: Any, labels: Any) -> Any:
    # keep one id per token, not the logits of every tag, through the evaluation loop
    return first(logits).argmax(dim=-1)


def prepare(spec: JobSpec) -> Prepared:
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    data = spec.data
    loaded = load_data(spec)
    names = loaded.names or []
    tag_to_id = {name: i for i, name in enumerate(names)}
    tokenizer = load_tokenizer(spec, fast_for="sub-words cannot be mapped to words")
    model = AutoModelForTokenClassification.from_pretrained(
        spec.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id=tag_to_id,
        ignore_mismatched_sizes=True, **lora.model_kwargs(spec))

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch[data.tokens_column], is_split_into_words=True, truncation=True,
                            max_length=data.max_length)
        encoded["labels"] = [
            align_labels(encoded.word_ids(i), [tag_to_id[t] for t in tags])
            for i, tags in enumerate(batch[data.tags_column])]
        encoded["fts_row"] = batch["fts_row"]
        return dict(encoded)

    def tokenize(split: Any) -> Any:
        return split.map(encode, batched=True, remove_columns=split.column_names, desc="tokenizing")

    evaluation = loaded.evaluation
    eval_words = list(evaluation[data.tokens_column][:EVAL_SAMPLES]) if evaluation is not None else []
    details: dict[str, Any] = {}
    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=tokenize(loaded.train),
        eval_dataset=tokenize(evaluation) if evaluation is not None else None,
        data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORED),
        compute_metrics=metrics(names, eval_words, details),
        eval_details=lambda: dict(details),
        preprocess_logits_for_metrics=argmax)


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    picked = training_table(spec).select(rows)
    return [(" ".join(words), entities(words, tags))
            for words, tags in zip(picked[spec.data.tokens_column], picked[spec.data.tags_column], strict=True)]

