"""The data side of the estimate: how many examples an epoch holds, how long they are in tokens, and the
evaluation set's size, from a sample of the training file tokenized as the task tokenizes it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import DataError
from .spec import JobSpec

SAMPLE_ROWS = 2000  # rows tokenized to count tokens; more rows are scaled from this sample


@dataclass(frozen=True)
class Shape:
    """Lengths of the example that sets the peak: the input, and the target of seq2seq."""

    source: int
    target: int


@dataclass(frozen=True)
class DataShape:
    examples: int
    lengths: list[int]  # tokens per example (input; + target for seq2seq) of a sample, in file order
    scale: float  # examples per sampled example
    longest: Shape
    eval_examples: int  # rows of the evaluation file, or the share held out (0: no evaluation set)


@lru_cache(maxsize=4)
def _tokenizer(model: str, mtime: float) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def _lengths(spec: JobSpec, tokenizer: Any, rows: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Input (and target) tokens of each example of `rows`, as the task tokenizes them."""
    data, limit = spec.data, spec.data.max_length
    if spec.task == "text-classification":
        pairs = [r[data.text_pair_column] for r in rows] if data.text_pair_column else None
        encoded = tokenizer([r[data.text_column] for r in rows], pairs, truncation=True, max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "token-classification":
        encoded = tokenizer([r[data.tokens_column] for r in rows], is_split_into_words=True, truncation=True,
                            max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "question-answering":
        encoded = tokenizer([r[data.question_column].lstrip() for r in rows], [r[data.context_column] for r in rows],
                            truncation="only_second", max_length=limit, stride=data.doc_stride,
                            return_overflowing_tokens=True)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "seq2seq":
        encoded = tokenizer([data.source_prefix + r[data.source_column] for r in rows],
                            text_target=[r[data.target_column] for r in rows], truncation=True, max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], [len(ids) for ids in encoded["labels"]]
    from .tasks.causal_lm import encode_pair, encode_text

    prompt, response = data.prompt_column, data.response_column or ""
    lengths = [len(encode_pair(tokenizer, r[prompt], r[response], data.train_on_prompt)[0] if prompt
                   else encode_text(tokenizer, r[data.text_column])[0]) for r in rows]
    if data.packing:
        total = sum(lengths)
        return [limit] * (total // limit) + ([total % limit] if total % limit else []), []
    return [min(n, limit) for n in lengths], []


def config_mtime(model: str) -> float:
    """The model's config.json modification time: the key of the caches that depend on the model."""
    config_file = Path(model) / "config.json"
    return config_file.stat().st_mtime if config_file.is_file() else 0.0


def data_shape(spec: JobSpec) -> DataShape:
    """The training examples and their token lengths, from a sample of the file read through the tasks'
    cache."""
    from .tasks.data import cached_read

    table = cached_read(spec.task, spec.data.train, spec.data)
    rows = len(table)
    picked = sorted(random.Random(0).sample(range(rows), SAMPLE_ROWS)) if rows > SAMPLE_ROWS else list(range(rows))
    tokenizer = _tokenizer(spec.model, config_mtime(spec.model))
    inputs, targets = _lengths(spec, tokenizer, table.select(picked).to_list())
    kept = 1 - (spec.data.eval_fraction or 0)
    scale = rows * kept / len(picked)
    lengths = [a + b for a, b in zip(inputs, targets, strict=True)] if targets else inputs
    return DataShape(examples=max(1, round(len(inputs) * scale)), lengths=lengths, scale=scale,
                     longest=Shape(max(inputs, default=1), max(targets, default=1)),
                     eval_examples=_eval_rows(spec, rows))


def _eval_rows(spec: JobSpec, train_rows: int) -> int:
    from .tasks.data import cached_read

    if spec.training.eval_strategy == "no":
        return 0
    if spec.data.eval_fraction is not None:
        return round(train_rows * spec.data.eval_fraction)
    if spec.data.eval is None:
        return 0
    try:
        return len(cached_read(spec.task, spec.data.eval, spec.data))
    except (DataError, OSError):
        return 0


def padded_tokens(lengths: list[int], batch: int, seed: int) -> int:
    """Tokens the model sees when shuffled examples are padded to the longest of their batch."""
    order = lengths[:]
    random.Random(seed).shuffle(order)
    return sum(max(order[i:i + batch]) * len(order[i:i + batch]) for i in range(0, len(order), batch))


def num_labels(spec: JobSpec) -> int:
    """Classes of a classification task (the size of its head), from the training file; 2 otherwise."""
    if spec.task not in ("text-classification", "token-classification"):
        return 2
    from .tasks import load_task
    from .tasks.data import cached_read

    try:
        table = cached_read(spec.task, spec.data.train, spec.data)
        names = load_task(spec.task).label_names(table, None, spec.data)
    except (DataError, OSError):
        return 2
    return max(2, len(names or []))
