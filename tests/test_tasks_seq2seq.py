"""Sequence to sequence: a tiny T5 fine-tuned through the HTTP API with generation at evaluation (BLEU,
chrF, samples), an encoder-decoder built from an encoder folder, and rows with an empty target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import RunningServer
from finetune_studio.errors import DataError, Unsupported
from finetune_studio.spec import parse_spec
from finetune_studio.tasks import seq2seq
from finetune_studio.testing.tiny_models import build_tiny_encoder, build_tiny_t5, built, translation_rows, write_jsonl
from task_runs import QUICK_TRAINING, metric_names, run_to_completion, samples


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.getbasetemp() / "tiny-encoder", build_tiny_encoder)


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.getbasetemp() / "tiny-t5", build_tiny_t5)


def translation_spec(model: Path, folder: Path, **data: Any) -> dict[str, Any]:
    train = write_jsonl(folder / "train.jsonl", translation_rows(96, seed=2))
    dev = write_jsonl(folder / "dev.jsonl", translation_rows(10, seed=3))
    return {"name": "translate", "task": "seq2seq", "model": str(model),
            "data": {"train": str(train), "eval": str(dev), "max_length": 16, **data},
            "training": dict(QUICK_TRAINING, epochs=2)}


def test_t5_fine_tune_generates_at_evaluation_and_reports_bleu_and_chrf(server: RunningServer, t5: Path,
                                                                        tmp_path: Path) -> None:
    job = run_to_completion(server, translation_spec(t5, tmp_path, source_prefix="translate: "))

    assert {"eval/bleu", "eval/chrf", "eval/loss", "eval/generated_length"} <= metric_names(server, job.id)
    shown = samples(server, job.id)["samples"]
    dev = translation_rows(10, seed=3)
    assert [(s["input"], s["reference"]) for s in shown] == [(r["source"], r["target"]) for r in dev[:5]]
    assert all(isinstance(s["prediction"], str) for s in shown)

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(job.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(job.output_dir)
    with torch.no_grad():
        out = model.generate(**tokenizer(["translate: the big dog sees the cat"], return_tensors="pt"),
                             max_new_tokens=12)
    words = tokenizer.decode(out[0], skip_special_tokens=True).split()
    assert words[0] == "der"  # every target starts so: the first thing a model learns


def test_an_encoder_folder_becomes_an_encoder_decoder_that_learns_and_generates(encoder: Path,
                                                                                tmp_path: Path) -> None:
    spec = parse_spec(translation_spec(encoder, tmp_path), tmp_path)
    prepared = seq2seq.prepare(spec)
    model = prepared.model
    assert type(model).__name__ == "EncoderDecoderModel"
    assert model.config.decoder_start_token_id == prepared.tokenizer.cls_token_id
    assert model.config.decoder.add_cross_attention and model.config.decoder.is_decoder
    batch = prepared.data_collator([{k: v for k, v in prepared.train_dataset[i].items() if k != "fts_row"}
                                    for i in range(8)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with torch.no_grad():
        out = model.generate(input_ids=batch["input_ids"][:1], attention_mask=batch["attention_mask"][:1],
                             max_new_tokens=8)
    assert out.shape[0] == 1 and out[0, 0].item() == prepared.tokenizer.cls_token_id

    with_lora = parse_spec(dict(translation_spec(encoder, tmp_path), lora={"r": 4}), tmp_path)
    with pytest.raises(Unsupported, match="cross-attention"):
        seq2seq.prepare(with_lora)


def test_an_empty_target_names_the_row(tmp_path: Path, t5: Path) -> None:
    rows = translation_rows(6, seed=4)
    rows[4]["target"] = "  "
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    spec = parse_spec({"task": "seq2seq", "model": str(t5), "data": {"train": str(path)}}, tmp_path)
    with pytest.raises(DataError, match=r"train.jsonl, row 5: the target \('target'\) is empty"):
        seq2seq.prepare(spec)
