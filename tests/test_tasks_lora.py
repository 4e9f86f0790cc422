"""LoRA through peft for every task: target modules per architecture, a clear error for a layer that does
not exist, only adapters (and the task's new head) training, and a causal-LM run through the HTTP API whose
adapter and merged model are checked weight by weight."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import RunningServer
from finetune_studio import lora
from finetune_studio.errors import SpecError, Unsupported
from finetune_studio.spec import JobSpec, parse_spec
from finetune_studio.tasks import load_task
from finetune_studio.testing.tiny_models import (
    build_tiny_encoder,
    build_tiny_llama,
    build_tiny_t5,
    built,
    instruction_rows,
    ner_sentences,
    qa_rows,
    sentences,
    translation_rows,
    write_conll,
    write_jsonl,
)
from task_runs import QUICK_TRAINING, run_to_completion


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp()
    return {"encoder": built(base / "tiny-encoder", build_tiny_encoder),
            "t5": built(base / "tiny-t5", build_tiny_t5), "llama": built(base / "tiny-llama", build_tiny_llama)}


def lora_spec(task: str, **lora_args: Any) -> JobSpec:
    return JobSpec.model_validate({"task": task, "model": "unused", "data": {"train": "unused.csv"},
                                   "lora": lora_args})


def test_default_targets_are_the_attention_projections_of_each_architecture(models: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    cases = [(AutoModelForSequenceClassification, "encoder", "text-classification", ["query", "value"]),
             (AutoModelForSeq2SeqLM, "t5", "seq2seq", ["q", "v"]),
             (AutoModelForCausalLM, "llama", "causal-lm", ["q_proj", "v_proj"])]
    for auto, name, task, expected in cases:
        model = auto.from_pretrained(models[name])
        assert lora.choose_targets(lora_spec(task), model) == expected


def test_a_target_module_that_does_not_exist_is_named_with_the_layers_that_do(models: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(models["llama"])
    with pytest.raises(SpecError) as caught:
        lora.choose_targets(lora_spec("causal-lm", target_modules=["q_proj", "attn_out"]), model)
    problem = caught.value.problems[0]
    assert problem.field == "lora.target_modules"
    assert "'attn_out' is not a layer of this model (LlamaForCausalLM)" in problem.message
    assert "down_proj, embed_tokens, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj" in problem.message


def test_4bit_without_bitsandbytes_is_refused_with_the_fix() -> None:
    """The test environment has no bitsandbytes (`make install` leaves it out: it needs a GPU)."""
    assert importlib.util.find_spec("bitsandbytes") is None
    with pytest.raises(Unsupported, match="needs the bitsandbytes package"):
        lora.model_kwargs(lora_spec("causal-lm", quantize="4bit"))


def task_spec(task: str, models: dict[str, Path], folder: Path) -> dict[str, Any]:
    """A small job of each task on its tiny model."""
    if task == "text-classification":
        import csv

        path = folder / "train.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([("text", "label"), *sentences(16, seed=1)])
        return {"model": str(models["encoder"]), "data": {"train": str(path)}}
    if task == "token-classification":
        return {"model": str(models["encoder"]),
                "data": {"train": str(write_conll(folder / "train.conll", ner_sentences(16, seed=1)))}}
    if task == "question-answering":
        return {"model": str(models["encoder"]),
                "data": {"train": str(write_jsonl(folder / "train.jsonl", qa_rows(16, seed=1))), "max_length": 64,
                         "doc_stride": 16}}
    if task == "seq2seq":
        return {"model": str(models["t5"]),
                "data": {"train": str(write_jsonl(folder / "train.jsonl", translation_rows(16, seed=1)))}}
    return {"model": str(models["llama"]),
            "data": {"train": str(write_jsonl(folder / "train.jsonl", instruction_rows(16, seed=1))),
                     "prompt_column": "prompt", "response_column": "response"}}


HEADS = {"text-classification": "classifier", "token-classification": "classifier",
         "question-answering": "qa_outputs", "seq2seq": None, "causal-lm": None}


@pytest.mark.parametrize("task", list(HEADS))
def test_every_task_trains_only_its_adapters_and_its_new_head(task: str, models: dict[str, Path],
                                                              tmp_path: Path) -> None:
    spec = parse_spec(dict(task_spec(task, models, tmp_path), task=task, lora={"r": 4}), tmp_path)
    prepared = load_task(task).prepare(spec)
    model = lora.wrap(spec, prepared.model)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    adapters = [name for name in trainable if ".lora_A." in name or ".lora_B." in name]
    head = [name for name in trainable if name not in adapters]
    assert adapters
    assert all(HEADS[task] is not None and f"{HEADS[task]}.modules_to_save" in name for name in head), head
    batch = prepared.data_collator([{k: v for k, v in prepared.train_dataset[i].items() if k != "fts_row"}
                                    for i in range(4)])
    model(**batch).loss.backward()
    assert all(p.grad is None for name, p in model.named_parameters() if name not in trainable)
    assert all(p.grad is not None for name, p in model.named_parameters() if ".lora_B." in name)


def test_a_lora_run_trains_only_adapters_and_its_merged_model_is_base_plus_adapter(
        server: RunningServer, models: dict[str, Path], tmp_path: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    rank, alpha = 4, 8
    train = write_jsonl(tmp_path / "train.jsonl", instruction_rows(64, seed=2))
    dev = write_jsonl(tmp_path / "dev.jsonl", instruction_rows(6, seed=3))
    spec = {"name": "lora-chat", "task": "causal-lm", "model": str(models["llama"]),
            "data": {"train": str(train), "eval": str(dev), "max_length": 48, "prompt_column": "prompt",
                     "response_column": "response"},
            "training": dict(QUICK_TRAINING, epochs=2), "lora": {"r": rank, "alpha": alpha, "merge": True}}
    job = run_to_completion(server, spec)
    adapter_dir, merged_dir = Path(job.output_dir), Path(job.output_dir).parent / "model-merged"
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["target_modules"] in (
        ["q_proj", "v_proj"], ["v_proj", "q_proj"])

    # Count: r * (in + out) for q_proj and v_proj of each layer, and nothing else in the adapter.
    base = AutoModelForCausalLM.from_pretrained(models["llama"])
    adapter = load_file(str(adapter_dir / "adapter_model.safetensors"))
    assert all(".lora_A." in name or ".lora_B." in name for name in adapter)
    config = base.config
    kv_width = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    expected = config.num_hidden_layers * rank * ((config.hidden_size * 2) + (config.hidden_size + kv_width))
    assert sum(t.numel() for t in adapter.values()) == expected
    log = "\n".join(line["text"] for line in server.client.request("GET", f"/api/jobs/{job.id}/logs")["lines"])
    counted = re.search(r"LoRA r=4 alpha=8 on q_proj, v_proj: ([\d,]+) of ([\d,]+) parameters train", log)
    assert counted and int(counted.group(1).replace(",", "")) == expected

    # The merged weights are the base's, plus B @ A * alpha / r on the adapted layers only.
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    base_weights, merged_weights = base.state_dict(), merged.state_dict()
    assert base_weights.keys() == merged_weights.keys()
    changed = {name for name in base_weights if not torch.equal(base_weights[name], merged_weights[name])}
    assert changed and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed)
    layer = "model.layers.0.self_attn.q_proj"
    a, b = (adapter[f"base_model.model.{layer}.lora_{x}.weight"] for x in "AB")
    torch.testing.assert_close(merged_weights[f"{layer}.weight"],
                               base_weights[f"{layer}.weight"] + (b @ a) * (alpha / rank))

    # On a fixed input the merged model answers as base + adapter, and not as the base alone.
    inputs = torch.tensor([[1, 5, 9, 14, 22, 31, 40]])
    with torch.no_grad():
        base_logits = base(input_ids=inputs).logits
        with_adapter = PeftModel.from_pretrained(base, adapter_dir)(input_ids=inputs).logits
        merged_logits = merged(input_ids=inputs).logits
    torch.testing.assert_close(merged_logits, with_adapter, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)
