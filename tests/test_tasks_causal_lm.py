"""Causal LM: prompt/response rendered with the chat template, prompt tokens masked out of the loss,
packing, and a real fine-tune of a tiny Llama through the HTTP API with perplexity and generated samples."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import RunningServer
from finetune_studio.errors import DataError
from finetune_studio.spec import parse_spec
from finetune_studio.tasks import causal_lm
from finetune_studio.testing.tiny_models import build_tiny_llama, built, instruction_rows, write_jsonl
from task_runs import QUICK_TRAINING, metric_names, run_to_completion, samples


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.getbasetemp() / "tiny-llama", build_tiny_llama)


@pytest.fixture(scope="module")
def plain_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model, its tokenizer without a chat template."""
    return built(tmp_path_factory.getbasetemp() / "tiny-llama-plain",
                 lambda folder: build_tiny_llama(folder, chat_template=False))


def load(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_the_chat_template_renders_the_pair_and_only_the_response_is_labelled(llama: Path) -> None:
    _, tokenizer = load(llama)
    ids, labels = causal_lm.encode_pair(tokenizer, "what colour is the red car ?", "the car is red .", False)
    assert tokenizer.decode(ids) == ("<|user|> what colour is the red car? <|end|> <|assistant|> "
                                     "the car is red. <|end|> </s>")
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:first]) == "<|user|> what colour is the red car? <|end|> <|assistant|>"
    assert labels[first:] == ids[first:]
    assert tokenizer.decode(ids[first:]) == "the car is red. <|end|> </s>"

    _, every = causal_lm.encode_pair(tokenizer, "what colour is the red car ?", "the car is red .", True)
    assert every == ids


def test_without_a_template_prompt_and_response_are_joined_as_written(plain_llama: Path) -> None:
    _, tokenizer = load(plain_llama)
    ids, labels = causal_lm.encode_pair(tokenizer, "what colour is the red car ?", "the car is red .", False)
    assert tokenizer.decode(ids) == "<s> what colour is the red car? the car is red. </s>"
    assert tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100]) == \
        "the car is red. </s>"


def test_prompt_tokens_add_nothing_to_the_loss(llama: Path) -> None:
    """The model's loss with the prompt masked is the mean cross-entropy of the response tokens alone."""
    model, tokenizer = load(llama)
    ids, labels = causal_lm.encode_pair(tokenizer, "what colour is the blue cup ?", "the cup is blue .", False)
    input_ids, label_ids = torch.tensor([ids]), torch.tensor([labels])
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=label_ids)
    logits, targets = out.logits[0, :-1], label_ids[0, 1:]  # position i predicts token i + 1
    kept = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[kept], targets[kept])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(kept.sum()) == len(tokenizer("the cup is blue . <|end|> ", add_special_tokens=False)["input_ids"]) + 1


def test_packing_joins_examples_into_full_blocks_and_keeps_the_masks() -> None:
    examples = [causal_lm.Example([1, 2, 3, 4], [-100, -100, 3, 4], 0),
                causal_lm.Example([5, 6, 7], [-100, 6, 7], 1), causal_lm.Example([8, 9], [8, 9], 2)]
    blocks = causal_lm.pack(examples, 4)
    assert [b.input_ids for b in blocks] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert [b.labels for b in blocks] == [[-100, -100, 3, 4], [-100, 6, 7, 8], [9]]
    assert [b.row for b in blocks] == [0, 1, 2]


def test_an_empty_response_names_the_row(tmp_path: Path, llama: Path) -> None:
    rows = instruction_rows(4, seed=1)
    rows[1]["response"] = ""
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    spec = parse_spec({"task": "causal-lm", "model": str(llama),
                       "data": {"train": str(path), "prompt_column": "prompt", "response_column": "response"}},
                      tmp_path)
    with pytest.raises(DataError, match=r"train.jsonl, row 2: the response \('response'\) is empty"):
        causal_lm.prepare(spec)


def test_causal_lm_fine_tune_reports_perplexity_and_generated_samples(server: RunningServer, llama: Path,
                                                                      tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", instruction_rows(96, seed=2))
    dev = write_jsonl(tmp_path / "dev.jsonl", instruction_rows(8, seed=3))
    spec: dict[str, Any] = {"name": "chat", "task": "causal-lm", "model": str(llama),
                            "data": {"train": str(train), "eval": str(dev), "max_length": 48,
                                     "prompt_column": "prompt", "response_column": "response"},
                            "training": dict(QUICK_TRAINING, epochs=2)}
    job = run_to_completion(server, spec)

    series = server.client.metrics(job.id, names="eval/loss,eval/perplexity")["series"]
    assert series["eval/perplexity"]["value"][-1] == pytest.approx(math.exp(series["eval/loss"]["value"][-1]))
    assert "train/loss" in metric_names(server, job.id)
    shown = samples(server, job.id)
    dev_rows = instruction_rows(8, seed=3)
    assert [(s["input"], s["reference"]) for s in shown["samples"]] == [
        (r["prompt"], r["response"]) for r in dev_rows[:5]]
    assert all(s["prediction"] for s in shown["samples"])  # something was generated

    batch = server.client.request("GET", f"/api/jobs/{job.id}/steps/2/batch")["examples"]
    rows = instruction_rows(96, seed=2)
    assert len(batch) == 8 and all((e["text"], e["label"]) == (rows[e["index"]]["prompt"], rows[e["index"]]["response"])
                                   for e in batch)

    model, tokenizer = load(Path(job.output_dir))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "what colour is the red ball ?"}],
                                           tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).startswith("the ")
