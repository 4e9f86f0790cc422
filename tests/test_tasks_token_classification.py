"""Token classification (NER): CoNLL and JSONL data, sub-word label alignment, entity-level metrics, and a
real fine-tune of a tiny BERT through the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import RunningServer
from finetune_studio.errors import DataError
from finetune_studio.spec import parse_spec
from finetune_studio.tasks import token_classification as ner
from finetune_studio.testing.tiny_models import build_tiny_encoder, built, ner_sentences, write_conll, write_jsonl
from task_runs import QUICK_TRAINING, metric_names, run_to_completion, samples


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.getbasetemp() / "tiny-encoder", build_tiny_encoder)


def test_first_sub_word_carries_the_tag_and_the_rest_are_ignored() -> None:
    # [CLS] an ##na li ##nd ##qvist works [SEP]: words 0, 0, 1, 1, 1, 2
    word_ids = [None, 0, 0, 1, 1, 1, 2, None]
    assert ner.align_labels(word_ids, [1, 2, 0]) == [-100, 1, -100, 2, -100, -100, 0, -100]


def test_alignment_with_a_real_tokenizer_labels_each_word_once(encoder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    words, tags = ["anna", "lindqvist", "works", "for", "globex"], [1, 2, 0, 0, 3]
    encoded = tokenizer(words, is_split_into_words=True)
    labels = ner.align_labels(encoded.word_ids(), tags)
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert len(pieces) > len(words) + 2, "the test needs words split into several sub-words"
    labelled = [piece for piece, label in zip(pieces, labels, strict=True) if label != -100]
    assert [label for label in labels if label != -100] == tags
    assert not any(piece.startswith("##") or piece in ("[CLS]", "[SEP]") for piece in labelled)


def test_conll_reader_takes_the_last_field_and_skips_docstart(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- -X- O O\n\nAda NNP B-NP B-PER\nsang VBD B-VP O\n\t\nin IN O O\nParis NNP B-NP B-LOC\n",
                    encoding="utf-8")
    tokens, tags = ner.read_conll(str(path))
    assert tokens == [["Ada", "sang"], ["in", "Paris"]]
    assert tags == [["B-PER", "O"], ["O", "B-LOC"]]
    assert ner.tag_names(tags) == ["O", "B-LOC", "B-PER"]


def test_a_line_without_its_tag_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ner.txt"
    path.write_text("Ada\tB-PER\nsang\tO\n\nin\tO\nParis\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        ner.read_conll(str(path))
    assert f"{path}, line 5" in caught.value.message and "'Paris' has a token but no tag" in caught.value.message


def test_jsonl_rows_with_tokens_and_tags_are_checked_per_row(tmp_path: Path, encoder: Path) -> None:
    rows = [{"tokens": words, "tags": tags} for words, tags in ner_sentences(6, seed=5)]
    rows[3]["tags"] = rows[3]["tags"][:-1]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    spec = parse_spec({"task": "token-classification", "model": str(encoder), "data": {"train": str(path)}}, tmp_path)
    with pytest.raises(DataError, match=r"train.jsonl, row 4: \d+ tokens but \d+ tags"):
        ner.prepare(spec)


def test_ner_fine_tune_reports_entity_metrics_and_samples(server: RunningServer, encoder: Path,
                                                          tmp_path: Path) -> None:
    train = write_conll(tmp_path / "train.conll", ner_sentences(96, seed=2))
    dev = write_conll(tmp_path / "dev.conll", ner_sentences(24, seed=3))
    spec: dict[str, Any] = {"name": "ner", "task": "token-classification", "model": str(encoder),
                            "data": {"train": str(train), "eval": str(dev), "max_length": 32},
                            "training": dict(QUICK_TRAINING, epochs=2)}
    job = run_to_completion(server, spec)

    assert {"eval/precision", "eval/recall", "eval/f1", "eval/accuracy", "train/loss"} <= metric_names(server, job.id)
    assert job.best_metric and job.best_metric["eval/f1"] >= 0.8
    evaluation = [e for e in server.client.stream(job.id) if e.type == "eval"][-1]
    assert set(evaluation.data["per_class"]) == {"LOC", "ORG", "PER"}  # entity types, not B-/I- tags
    shown = samples(server, job.id)
    assert shown["step"] == evaluation.data["step"] and len(shown["samples"]) == 5
    first_words, first_tags = ner_sentences(24, seed=3)[0]
    assert shown["samples"][0]["input"] == " ".join(first_words)
    assert shown["samples"][0]["reference"] == ner.entities(first_words, first_tags)

    batch = server.client.request("GET", f"/api/jobs/{job.id}/steps/1/batch")["examples"]
    sentences = ner_sentences(96, seed=2)
    assert len(batch) == 8 and all(
        (e["text"], e["label"]) == (" ".join(sentences[e["index"]][0]), ner.entities(*sentences[e["index"]]))
        for e in batch)

    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(job.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(job.output_dir)
    words = ["omar", "santos", "works", "for", "acme", "in", "lima"]
    encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**encoded).logits.argmax(-1)[0].tolist()
    first = [i for i, w in enumerate(encoded.word_ids()) if w is not None and w != encoded.word_ids()[i - 1]]
    tags = [model.config.id2label[predicted[i]] for i in first]
    assert ner.entities(words, tags) == "PER: omar santos; ORG: acme; LOC: lima"
