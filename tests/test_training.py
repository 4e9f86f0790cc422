"""A real fine-tune through the HTTP API: the tiny BERT trains in a worker process on the CPU."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import torch

from conftest import RunningServer


def test_job_completes_streams_its_loss_and_saves_a_model_that_predicts(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["epochs"] = 3
    job = server.client.submit(tiny_spec)
    assert job.state == "queued" and job.kind == "managed"
    events = list(server.client.stream(job.id))
    assert events[-1].type == "state" and events[-1].data["state"] == "completed"
    loss_steps = [e.data["step"] for e in events if e.type == "metric" and "train/loss" in e.data["values"]]
    assert loss_steps == sorted(set(loss_steps)) and len(loss_steps) >= 50  # one point per step
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate

    evals = server.client.metrics(job.id, names="eval/accuracy,eval/f1,eval/loss")["series"]
    assert len(evals["eval/accuracy"]["step"]) == 3  # one evaluation per epoch
    final = server.client.job(job.id)
    assert final.progress.step == final.progress.max_steps == 60
    assert final.best_metric and final.best_metric["eval/accuracy"] >= 0.9

    eval_events = [e for e in events if e.type == "eval"]
    assert eval_events[-1].data["labels"] == ["negative", "positive"]
    assert sum(map(sum, eval_events[-1].data["confusion_matrix"])) == 40

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(final.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(final.output_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        logits = model(**tokenizer(["a wonderful brilliant film", "a terrible boring film"],
                                   return_tensors="pt", padding=True)).logits
    assert [model.config.id2label[int(i)] for i in logits.argmax(-1)] == ["positive", "negative"]


def test_step_batch_names_the_examples_of_a_step(server: RunningServer, tiny_spec: dict[str, Any],
                                                 classification_data: tuple[Path, Path]) -> None:
    tiny_spec["training"].update(epochs=1, batch_size=4, gradient_accumulation_steps=2)
    job = server.client.submit(tiny_spec)
    assert server.wait_for(job.id).state == "completed"
    batch = server.client.request("GET", f"/api/jobs/{job.id}/steps/3/batch")
    examples = batch["examples"]
    assert len(examples) == 8  # batch 4 x 2 accumulation steps
    lines = classification_data[0].read_text(encoding="utf-8").splitlines()[1:]
    for example in examples:
        text, label = lines[example["index"]].rsplit(",", 1)
        assert (example["text"], example["label"]) == (text, label)
    assert [e["tokens"] for e in examples] == sorted((e["tokens"] for e in examples), reverse=True)
    assert all(e["tokens"] >= 7 for e in examples)  # [CLS] + seven words + [SEP], at least


def test_cancel_keeps_a_loadable_checkpoint_and_the_queue_moves_on(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"].update(epochs=50, save_strategy="no")
    first = server.client.submit(tiny_spec)
    second_spec = dict(tiny_spec, name="second", training=dict(tiny_spec["training"], epochs=1))
    second = server.client.submit(second_spec)
    server.wait_for(first.id, {"running"})
    assert server.client.job(second.id).state == "queued"  # one job at a time on the CPU
    while server.client.job(first.id).progress.step < 5:
        time.sleep(0.2)
    server.client.cancel(first.id)
    cancelled = server.wait_for(first.id)
    assert cancelled.state == "cancelled"
    checkpoints = sorted((server.data_dir / "jobs" / first.id / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "cancel must save a checkpoint"
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(checkpoints[-1])
    assert server.wait_for(second.id).state == "completed"


def test_crashed_worker_leaves_its_last_stderr_lines(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["epochs"] = 50
    job = server.client.submit(tiny_spec)
    while server.client.job(job.id).progress.step < 2:
        time.sleep(0.2)
    worker_pid = _worker_pid(server, job.id)
    os.kill(worker_pid, signal.SIGKILL)
    failed = server.wait_for(job.id)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error.type == "worker_crashed" and "signal 9" in failed.error.message
    assert "Last stderr lines" in failed.error.message


def _worker_pid(server: RunningServer, job_id: str) -> int:
    import sqlite3

    with sqlite3.connect(server.data_dir / "studio.db") as conn:
        return int(conn.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
