"""`GET /api/jobs/{id}/samples`: a few predictions of the latest evaluation next to their references, here
from a text-classification job trained with LoRA, whose adapter then reloads and predicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from conftest import RunningServer
from finetune_studio.store import Store
from finetune_studio.wire import Job, ReporterEvent
from task_runs import samples


def test_text_classification_with_lora_shows_its_predictions_and_its_adapter_predicts(
        server: RunningServer, tiny_spec: dict[str, Any], classification_data: tuple[Path, Path]) -> None:
    tiny_spec["lora"] = {"r": 8, "alpha": 16}
    tiny_spec["training"].update(epochs=8, learning_rate=5e-2, save_strategy="no")  # LoRA on a random base: slow
    queued = server.client.submit(tiny_spec)
    assert samples(server, queued.id) == {"step": None, "samples": []}  # no evaluation yet
    job = server.wait_for(queued.id, timeout=300)
    assert job.state == "completed", job.error

    shown = samples(server, job.id)
    assert shown["step"] == job.progress.max_steps  # the last evaluation, at the end of the last epoch
    dev_rows = classification_data[1].read_text(encoding="utf-8").splitlines()[1:6]
    assert [(s["input"], s["reference"]) for s in shown["samples"]] == [
        tuple(row.rsplit(",", 1)) for row in dev_rows]
    assert {s["prediction"] for s in shown["samples"]} <= {"negative", "positive"}
    assert job.best_metric and job.best_metric["eval/accuracy"] >= 0.75

    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    # An adapter holds no config: the label names come back with the base model's loading arguments.
    model = AutoPeftModelForSequenceClassification.from_pretrained(job.output_dir,
                                                                   id2label={0: "negative", 1: "positive"})
    tokenizer = AutoTokenizer.from_pretrained(job.output_dir)
    # The reloaded adapter predicts what the job showed for the same inputs at its last evaluation.
    inputs = [s["input"] for s in shown["samples"]]
    with torch.no_grad():
        logits = model(**tokenizer(inputs, return_tensors="pt", padding=True)).logits
    assert [model.config.id2label[int(i)] for i in logits.argmax(-1)] == [s["prediction"] for s in shown["samples"]]


def test_latest_eval_is_the_last_eval_event_of_the_job(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    try:
        job = Job(id="j1", name="n", task="seq2seq", kind="managed", state="running", attempt=1, created_at=0.0,
                  output_dir=str(tmp_path), spec={"task": "seq2seq", "model": "m", "data": {"train": "t.jsonl"}})
        store.insert_job(job)
        assert store.latest_eval("j1") is None
        events = [ReporterEvent(seq=1, type="eval", time=1.0, data={"step": 5, "values": {}, "samples": []}),
                  ReporterEvent(seq=2, type="metric", time=2.0, data={"step": 6, "values": {"train/loss": 1.0}}),
                  ReporterEvent(seq=3, type="eval", time=3.0, data={"step": 10, "values": {}, "samples": [
                      {"input": "a", "prediction": "b", "reference": "c"}]})]
        store.ingest("j1", 1, events)
        latest = store.latest_eval("j1")
        assert latest is not None and latest.data["step"] == 10 and latest.data["samples"][0]["prediction"] == "b"
    finally:
        store.close()
