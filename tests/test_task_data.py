"""Data checks at submit (`finetune_studio.tasks.check_data`, issue 11): every problem the worker would meet
in the data names its field of the spec and what would work; the worker raises the same errors when the
files change after submit. Tiny files in tmp_path; no model is loaded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from finetune_studio.errors import DataError, FieldProblem
from finetune_studio.spec import JobSpec, parse_spec
from finetune_studio.tasks import check_data
from finetune_studio.tasks.data import load_data
from finetune_studio.testing.tiny_models import (
    instruction_rows,
    ner_sentences,
    qa_rows,
    translation_rows,
    write_conll,
    write_jsonl,
)

GOOD_CSV = "text,label\ngood film,positive\ndull film,negative\nfine film,positive\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def spec_of(tmp_path: Path, task: str = "text-classification", training: dict[str, Any] | None = None,
            **data: Any) -> JobSpec:
    return parse_spec({"task": task, "model": "tiny-model", "data": data,
                       "training": training if training is not None else {"eval_strategy": "no"}}, tmp_path)


def only(problems: list[FieldProblem], field: str) -> FieldProblem:
    assert [p.field for p in problems] == [field], problems
    return problems[0]


def test_good_data_has_no_problems(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", GOOD_CSV)
    dev = write(tmp_path / "dev.csv", "text,label\nbad film,negative\n")
    assert check_data(spec_of(tmp_path, train=train, eval=dev, training={})) == []
    assert check_data(spec_of(tmp_path, train=train, eval_fraction=0.5, training={})) == []


def test_a_missing_column_names_its_key_and_the_columns_found(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "review,label\ngood film,positive\ndull film,negative\n")
    problem = only(check_data(spec_of(tmp_path, train=train)), "data.text_column")
    assert "no column 'text'" in problem.message and "review, label" in problem.message

    dev = write(tmp_path / "dev.csv", "text,sentiment\nbad film,negative\n")
    problem = only(check_data(spec_of(tmp_path, train=write(tmp_path / "ok.csv", GOOD_CSV), eval=dev)),
                   "data.label_column")
    assert "dev.csv has no column 'label'" in problem.message and "text, sentiment" in problem.message


def test_labels_mixing_integers_and_strings_are_refused(tmp_path: Path) -> None:
    """Labels 1, "pos", 0, "neg" used to train four classes to an accuracy of 0.0."""
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": "pos"}, {"text": "c", "label": 0},
            {"text": "d", "label": "neg"}]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    problem = only(check_data(spec_of(tmp_path, train=train)), "data.label_column")
    assert "mix integers" in problem.message and "all names (strings), or all integers 0..N-1" in problem.message


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    """A training set with one label used to train to a meaningless accuracy of 1.0."""
    train = write(tmp_path / "train.csv", "text,label\ngood film,positive\nfine film,positive\n")
    problem = only(check_data(spec_of(tmp_path, train=train)), "data.label_column")
    assert "needs at least two classes" in problem.message and "'positive'" in problem.message


def test_eval_labels_never_seen_in_training_blame_the_eval_file(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", GOOD_CSV)
    dev = write(tmp_path / "dev.csv", "text,label\nmeh film,neutral\n")
    problem = only(check_data(spec_of(tmp_path, train=train, eval=dev)), "data.eval")
    assert "eval labels ['neutral'] never occur in training" in problem.message


def test_evaluation_without_eval_data_suggests_a_fraction_or_no_evaluation(tmp_path: Path) -> None:
    """A spec with training data only used to be accepted and fail in the worker with the Trainer's error."""
    train = write(tmp_path / "train.csv", GOOD_CSV)
    problem = only(check_data(spec_of(tmp_path, train=train, training={})), "data.eval")
    assert "eval_fraction = 0.1" in problem.message and 'eval_strategy = "no"' in problem.message
    assert check_data(spec_of(tmp_path, train=train, training={"eval_strategy": "no"})) == []


def test_an_empty_training_file_is_refused(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "text,label\n")
    problem = only(check_data(spec_of(tmp_path, train=train)), "data.train")
    assert f"{train} has no rows" in problem.message


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    text = "text,label\ngood,positive\ncaf\u00e9 cr\u00e8me,negative\n"
    train = write(tmp_path / "train.csv", text, encoding="latin-1")
    offset = len("text,label\ngood,positive\ncaf")
    problem = only(check_data(spec_of(tmp_path, train=train)), "data.train")
    assert f"{train}, line 3: not UTF-8" in problem.message and f"at byte {offset} of the file" in problem.message
    assert "iconv" in problem.message

    conll = "Ada\tB-PER\nsang\tO\n\nZ\u00fcrich\tB-LOC\n"
    dev = write(tmp_path / "dev.conll", conll, encoding="latin-1")
    ner = spec_of(tmp_path, "token-classification", train=str(write_conll(tmp_path / "train.conll",
                                                                             ner_sentences(4))), eval=dev)
    problem = only(check_data(ner), "data.eval")
    assert f"{dev}, line 4: not UTF-8" in problem.message
    assert f"at byte {conll.index('Z') + 1} of the file" in problem.message


def test_each_file_is_checked_on_its_own(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "text,label\n")
    dev = write(tmp_path / "dev.csv", "review,label\nbad film,negative\n")
    problems = check_data(spec_of(tmp_path, train=train, eval=dev))
    assert sorted(p.field for p in problems) == ["data.text_column", "data.train"]


def test_the_other_tasks_name_their_own_column_keys(tmp_path: Path) -> None:
    pairs = [{"source": row["source"]} for row in translation_rows(3)]
    seq2seq = spec_of(tmp_path, "seq2seq", train=str(write_jsonl(tmp_path / "s2s.jsonl", pairs)))
    assert "no column 'target'" in only(check_data(seq2seq), "data.target_column").message

    qa = spec_of(tmp_path, "question-answering", train=str(write_jsonl(tmp_path / "qa.jsonl", qa_rows(3))),
                 answers_column="answer")
    assert "no column 'answer'" in only(check_data(qa), "data.answers_column").message

    rows = write_jsonl(tmp_path / "lm.jsonl", instruction_rows(3))
    lm = spec_of(tmp_path, "causal-lm", train=str(rows), eval=str(rows), prompt_column="prompt")
    assert "data.response_column" in only(check_data(lm), "data.response_column").message

    tags = spec_of(tmp_path, "token-classification", train=str(write_jsonl(tmp_path / "ner.jsonl", [
        {"tokens": ["Ada", "sang"], "tags": ["B-PER"]}])))
    assert "row 1: 2 tokens but 1 tags" in only(check_data(tags), "data.train").message


def test_data_changed_after_submit_fails_in_the_worker_with_the_same_error(tmp_path: Path) -> None:
    """The cache of read files is keyed on path, mtime and size: a rewritten file is read again."""
    path = tmp_path / "train.csv"
    spec = spec_of(tmp_path, train=write(path, GOOD_CSV), eval_fraction=0.5)
    assert check_data(spec) == []
    assert load_data(spec).names == ["negative", "positive"]

    write(path, "text,label\ngood film,positive\nfine film,positive\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert "at least two classes" in only(check_data(spec), "data.label_column").message
    with pytest.raises(DataError, match="needs at least two classes"):
        load_data(spec)
