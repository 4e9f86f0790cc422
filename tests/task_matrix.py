"""Every task under both scale-out modes (issue 13): one small job per task, for `test_distributed.py`
(torchrun, 2 CPU processes with gloo) and `test_ray.py` (2 Ray Train workers).

Each job trains `MAX_STEPS` steps of 2 processes × 4 rows (one epoch of the training file) and evaluates
once, at its last step, on 7 rows: the ranks get 4 and 3, so the gathered predictions go through the
uneven last batch. LoRA is on for some tasks in one mode and for the others in the other mode, so that
every task runs with and without LoRA across the two modes (the full matrix would cost twice the time).
Text classification is not in `TASKS`: each module's first test (`test_two_cpu_processes...`, the Ray
tests) already runs it, without LoRA and, under Ray, with LoRA (the killed-worker test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import RunningServer
from finetune_studio.testing.tiny_models import (
    build_tiny_encoder,
    build_tiny_llama,
    build_tiny_t5,
    built,
    instruction_rows,
    ner_sentences,
    qa_rows,
    translation_rows,
    write_conll,
    write_jsonl,
)
from finetune_studio.wire import Job

TASKS = ("token-classification", "question-answering", "seq2seq", "causal-lm")
EVAL_METRIC = {"token-classification": "eval/f1", "question-answering": "eval/f1", "seq2seq": "eval/bleu",
               "causal-lm": "eval/perplexity"}
LORA = {"ddp": frozenset({"token-classification", "causal-lm"}),
        "ray": frozenset({"question-answering", "seq2seq"})}
MAX_STEPS = 3
PROCESSES = 2
BATCH = 4
EVAL_ROWS = 7


def tiny_models(base: Path) -> dict[str, Path]:
    """The session's tiny encoder, T5 and Llama (built once, shared with the task tests)."""
    return {"encoder": built(base / "tiny-encoder", build_tiny_encoder),
            "t5": built(base / "tiny-t5", build_tiny_t5), "llama": built(base / "tiny-llama", build_tiny_llama)}


def task_data(task: str, folder: Path) -> tuple[str, dict[str, Any]]:
    """(the model to use, the `[data]` table) of `task`: one epoch of MAX_STEPS steps, EVAL_ROWS eval rows."""
    rows = MAX_STEPS * PROCESSES * BATCH
    folder.mkdir(parents=True, exist_ok=True)
    if task == "token-classification":
        return "encoder", {"train": str(write_conll(folder / "train.conll", ner_sentences(rows, seed=1))),
                           "eval": str(write_conll(folder / "dev.conll", ner_sentences(EVAL_ROWS, seed=2)))}
    if task == "question-answering":
        return "encoder", {"train": str(write_jsonl(folder / "train.jsonl", qa_rows(rows, seed=1))),
                           "eval": str(write_jsonl(folder / "dev.jsonl", qa_rows(EVAL_ROWS, seed=2))),
                           "max_length": 64, "doc_stride": 16}
    if task == "seq2seq":
        return "t5", {"train": str(write_jsonl(folder / "train.jsonl", translation_rows(rows, seed=1))),
                      "eval": str(write_jsonl(folder / "dev.jsonl", translation_rows(EVAL_ROWS, seed=2))),
                      "max_length": 16}
    return "llama", {"train": str(write_jsonl(folder / "train.jsonl", instruction_rows(rows, seed=1))),
                     "eval": str(write_jsonl(folder / "dev.jsonl", instruction_rows(EVAL_ROWS, seed=2))),
                     "prompt_column": "prompt", "response_column": "response", "max_length": 48}


def task_spec(task: str, models: dict[str, Path], folder: Path, resources: dict[str, Any],
              lora: bool, **training: Any) -> dict[str, Any]:
    model, data = task_data(task, folder)
    spec: dict[str, Any] = {
        "name": f"{task}{' lora' if lora else ''}", "task": task, "model": str(models[model]), "data": data,
        "training": {"max_steps": MAX_STEPS, "batch_size": BATCH, "eval_batch_size": 4, "learning_rate": 1e-2,
                     "logging_steps": 1, "warmup_steps": 0, "eval_strategy": "steps", "eval_steps": MAX_STEPS,
                     "save_strategy": "no", **training},
        "resources": resources}
    if lora:
        spec["lora"] = {"r": 4, "merge": True}  # rank 0 alone writes the merged model
    return spec


def check_task_run(server: RunningServer, job: Job, task: str, lora: bool, steps: int = MAX_STEPS) -> None:
    """Completed, each train step once, the task's metric from the one evaluation, and the saved model
    (the adapter and the merged model under LoRA)."""
    log = "\n".join(line["text"] for line in
                    server.client.request("GET", f"/api/jobs/{job.id}/logs", params={"limit": 10000})["lines"])
    assert job.state == "completed", (job.error, log[-4000:])
    series = server.client.metrics(job.id, names=f"train/loss,{EVAL_METRIC[task]}")["series"]
    assert series["train/loss"]["step"] == list(range(1, steps + 1))  # rank 0 alone reports
    assert series[EVAL_METRIC[task]]["step"] == [steps], series
    saved = Path(job.output_dir or "")
    assert (saved / ("adapter_model.safetensors" if lora else "config.json")).is_file(), list(saved.iterdir())
    assert (saved.parent / "model-merged" / "config.json").is_file() == lora
    assert ("LoRA r=4" in log) == lora
    shown = [(s["input"], s["reference"]) for s in server.client.request(
        "GET", f"/api/jobs/{job.id}/evals/latest")["data"]["samples"]]
    assert shown == expected_samples(task)  # in order: the ranks' predictions were gathered as the rows go


def expected_samples(task: str) -> list[tuple[str, str]]:
    """(input, reference) of the samples an evaluation shows: for NER and seq2seq the references are
    decoded from the labels gathered from both ranks, so their order checks the gathering."""
    from finetune_studio.tasks import EVAL_SAMPLES
    from finetune_studio.tasks.token_classification import entities

    if task == "token-classification":
        return [(" ".join(words), entities(words, tags))
                for words, tags in ner_sentences(EVAL_ROWS, seed=2)][:EVAL_SAMPLES]
    if task == "question-answering":
        return [(str(r["question"]), str(r["answers"]["text"][0]))  # type: ignore[index]
                for r in qa_rows(EVAL_ROWS, seed=2)][:EVAL_SAMPLES]
    if task == "seq2seq":
        return [(r["source"], r["target"]) for r in translation_rows(EVAL_ROWS, seed=2)][:EVAL_SAMPLES]
    return [(r["prompt"], r["response"]) for r in instruction_rows(EVAL_ROWS, seed=2)][:EVAL_SAMPLES]
