"""Extractive question answering: answers mapped to tokens through offset mappings across the windows of a
long context, spans mapped back to text, SQuAD metrics, and a real fine-tune through the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import RunningServer
from finetune_studio.errors import DataError
from finetune_studio.spec import parse_spec
from finetune_studio.tasks import question_answering as qa
from finetune_studio.testing.tiny_models import CAPITALS, build_tiny_encoder, built, qa_rows, write_jsonl
from task_runs import QUICK_TRAINING, metric_names, run_to_completion, samples

LONG_CONTEXT = ("the weather was mild and the markets were quiet that week . " * 4
                + "everyone agreed that the harbour of norway is bergen . the end .")
QUESTION = "which harbour ?"
ANSWER = "bergen"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.getbasetemp() / "tiny-encoder", build_tiny_encoder)


@pytest.fixture(scope="module")
def tokenizer(encoder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder)


def windows(tokenizer: Any) -> dict[str, Any]:
    start = LONG_CONTEXT.index(ANSWER)
    return qa.tokenize_features(tokenizer, [QUESTION], [LONG_CONTEXT], [([ANSWER], [start])], max_length=32,
                                stride=8)


def test_an_answer_past_the_first_window_is_labelled_in_the_windows_that_hold_it(tokenizer: Any) -> None:
    features = windows(tokenizer)
    count = len(features["input_ids"])
    assert count >= 3 and features["example_index"] == [0] * count
    assert (features["start_positions"][0], features["end_positions"][0]) == (0, 0)  # the first misses it
    holding = [i for i in range(count) if features["start_positions"][i] != 0]
    assert holding and holding[0] > 0
    for i in holding:
        offsets = features["offset_mapping"][i]
        start, end = features["start_positions"][i], features["end_positions"][i]
        assert LONG_CONTEXT[offsets[start][0]:offsets[end][1]] == ANSWER
        ids = features["input_ids"][i][start:end + 1]
        assert tokenizer.decode(ids).replace(" ##", "").replace("##", "") == ANSWER
    # overlapping windows: every context character is covered by some window
    covered = {c for window in features["offset_mapping"] for o in window if o for c in range(o[0], o[1])}
    assert covered >= {i for i, ch in enumerate(LONG_CONTEXT) if not ch.isspace()}


def test_the_best_span_over_all_windows_maps_back_to_the_context_text(tokenizer: Any) -> None:
    features = windows(tokenizer)
    count, width = len(features["input_ids"]), max(len(ids) for ids in features["input_ids"])
    start_logits, end_logits = np.full((count, width), -5.0), np.full((count, width), -5.0)
    holding = next(i for i in range(count) if features["start_positions"][i] != 0)
    start_logits[holding, features["start_positions"][holding]] = 8.0
    end_logits[holding, features["end_positions"][holding]] = 8.0
    start_logits[:, 0] = end_logits[:, 0] = 9.0  # "no answer" (the first token) scores higher in every window
    answers = qa.best_answers(start_logits, end_logits, features["example_index"], features["offset_mapping"],
                              [LONG_CONTEXT])
    assert answers == [ANSWER]
    assert qa.best_answers(start_logits, end_logits, features["example_index"], features["offset_mapping"],
                           [LONG_CONTEXT], allow_empty=True) == [""]


def test_squad_metrics_normalise_and_take_the_best_reference() -> None:
    assert qa.normalize_answer("The  Bergen harbour!") == "bergen harbour"
    exact, f1 = qa.squad_scores(["the bergen", "old town hall"], [["Bergen", "Oslo"], ["the town hall"]])
    assert exact == 0.5
    assert f1 == pytest.approx((1.0 + 0.8) / 2)  # "old town hall" vs "town hall": P 2/3, R 1


def test_an_answer_not_in_its_context_names_the_row(tmp_path: Path, encoder: Path) -> None:
    rows = qa_rows(5, seed=1)
    answers = rows[2]["answers"]
    assert isinstance(answers, dict)
    answers["answer_start"] = [answers["answer_start"][0] + 2]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    spec = parse_spec({"task": "question-answering", "model": str(encoder), "data": {"train": str(path)}}, tmp_path)
    with pytest.raises(DataError) as caught:
        qa.prepare(spec)
    assert "train.jsonl, row 3: the answer" in caught.value.message
    assert "does not occur in the context at answer_start" in caught.value.message
    assert caught.value.hint and "occurs at" in caught.value.hint


def test_squad_json_files_are_read_article_by_article(tmp_path: Path, encoder: Path) -> None:
    document = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "oslo is in norway .", "qas": [
            {"id": "a", "question": "where is oslo ?", "answers": [{"text": "norway", "answer_start": 11}]},
            {"id": "b", "question": "what is in norway ?", "answers": [{"text": "oslo", "answer_start": 0}]}]}]}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    spec = parse_spec({"task": "question-answering", "model": str(encoder),
                       "data": {"train": str(path), "eval": str(path), "max_length": 32, "doc_stride": 8}}, tmp_path)
    prepared = qa.prepare(spec)
    assert len(prepared.train_dataset) == 2
    assert set(prepared.train_dataset.column_names) >= {"input_ids", "start_positions", "end_positions", "fts_row"}
    assert "offset_mapping" not in prepared.train_dataset.column_names  # the model must not see it


def test_qa_fine_tune_reports_exact_match_and_f1_and_answers(server: RunningServer, encoder: Path,
                                                             tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", qa_rows(96, seed=2) + qa_rows(24, seed=4, filler=5))
    dev = write_jsonl(tmp_path / "dev.jsonl", qa_rows(12, seed=3) + qa_rows(6, seed=5, filler=5))
    spec: dict[str, Any] = {"name": "qa", "task": "question-answering", "model": str(encoder),
                            "data": {"train": str(train), "eval": str(dev), "max_length": 48, "doc_stride": 16},
                            "training": dict(QUICK_TRAINING, epochs=3)}
    job = run_to_completion(server, spec)

    assert {"eval/exact_match", "eval/f1", "eval/loss"} <= metric_names(server, job.id)
    assert job.best_metric and job.best_metric["eval/f1"] >= 0.5
    shown = samples(server, job.id)["samples"]
    assert len(shown) == 5 and shown[0]["input"] == qa_rows(12, seed=3)[0]["question"]
    assert all(s["reference"] in CAPITALS.values() and s["prediction"] in row["context"]
               for s, row in zip(shown, qa_rows(12, seed=3), strict=False))

    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(job.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(job.output_dir)
    row = qa_rows(1, seed=9, filler=5)[0]
    answer = row["answers"]["text"][0]  # type: ignore[index]
    features = qa.tokenize_features(tokenizer, [str(row["question"])], [str(row["context"])], [([], [])],
                                    max_length=48, stride=16)
    inputs = tokenizer.pad({"input_ids": features["input_ids"], "attention_mask": features["attention_mask"],
                            "token_type_ids": features["token_type_ids"]}, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    predicted = qa.best_answers(out.start_logits.numpy(), out.end_logits.numpy(), features["example_index"],
                                features["offset_mapping"], [str(row["context"])])
    assert predicted == [answer]
