"""Training that goes wrong is caught at the step it goes wrong: detectors, the `anomaly` event with the
batch's training rows, the saved batch, `on_anomaly = "stop"`, and no false alarm on a normal run.

The planted anomaly is real: the tiny BERT's [UNK] embedding is set to NaN, and one training row holds a
character the tokenizer has never seen, so exactly the batches holding that row give NaN logits.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import RunningServer
from finetune_studio.anomaly import AnomalySettings, RobustSpike
from finetune_studio.testing.tiny_models import sentences

PLANTED = "§ this row breaks the model"


@pytest.fixture(scope="module")
def poisoned_bert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("models") / "poisoned-bert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.unk_token_id] = float("nan")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert tokenizer.unk_token_id in tokenizer(PLANTED)["input_ids"]
    assert tokenizer.unk_token_id not in tokenizer(" ".join(t for t, _ in sentences(50)))["input_ids"]
    return folder


def planted_data(folder: Path) -> tuple[Path, Path, int]:
    """A training file with the planted row at a known row index, and a clean dev file."""
    rows = sentences(64, seed=3)
    planted_at = 37
    rows.insert(planted_at, (PLANTED, "negative"))
    train = folder / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")
    dev = folder / "dev.csv"
    dev.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in sentences(16, seed=4)),
                   encoding="utf-8")
    return train, dev, planted_at


def anomaly_spec(model: Path, train: Path, dev: Path, **debug: Any) -> dict[str, Any]:
    return {"name": "anomaly", "task": "text-classification", "model": str(model),
            "data": {"train": str(train), "eval": str(dev), "max_length": 32},
            "training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "logging_steps": 1,
                         "eval_strategy": "no", "save_strategy": "no"},
            "debug": debug}


def events_of(server: RunningServer, job_id: str, kind: str) -> list[dict[str, Any]]:
    from finetune_studio.wire import StreamEvent

    events = []
    for event in server.client.stream(job_id, after=0):
        events.append(event)
        if event.type == "state" and event.data.get("state") in ("completed", "failed", "cancelled"):
            break
    return [e.data for e in events if isinstance(e, StreamEvent) and e.type == kind]


def test_a_robust_spike_score_ignores_noise_and_catches_a_jump() -> None:
    rng = random.Random(0)
    spike = RobustSpike(z=8.0, window=50, warmup=20)
    losses = [2.0 * 0.99 ** i * (1 + rng.gauss(0, 0.1)) for i in range(300)]  # a noisy, falling loss
    assert all(score is None or score < 8.0 for score in map(spike.score, losses))
    jump = spike.score(losses[-1] * 10)
    assert jump is not None and jump > 8.0


def test_unknown_detectors_are_refused() -> None:
    with pytest.raises(ValueError, match="nan, spike, grad_spike"):
        AnomalySettings(break_on=frozenset({"nans"}))


def test_a_planted_nan_is_reported_with_its_rows_and_the_batch_saved(
        server: RunningServer, poisoned_bert: Path, tmp_path: Path) -> None:
    train, dev, planted_at = planted_data(tmp_path)
    job = server.client.submit(anomaly_spec(poisoned_bert, train, dev, break_on=["nan"]))
    final = server.wait_for(job.id, timeout=240)
    assert final.state == "completed", final.error  # on_anomaly = "continue" (the default)
    anomalies = events_of(server, job.id, "anomaly")
    assert anomalies, "no anomaly event"
    first = anomalies[0]
    assert first["kind"] == "nan" and planted_at in first["rows"]
    saved = torch.load(first["saved_to"], weights_only=False)
    assert saved["anomaly"]["step"] == first["step"]
    from transformers import AutoTokenizer

    unk = AutoTokenizer.from_pretrained(poisoned_bert).unk_token_id
    assert (saved["inputs"]["input_ids"] == unk).any()
    batch = server.client.request("GET", f"/api/jobs/{job.id}/steps/{first['step']}/batch")
    assert planted_at in [example["index"] for example in batch["examples"]]


def test_on_anomaly_stop_fails_the_job_naming_the_step_and_the_rows(
        server: RunningServer, poisoned_bert: Path, tmp_path: Path) -> None:
    train, dev, planted_at = planted_data(tmp_path)
    job = server.client.submit(anomaly_spec(poisoned_bert, train, dev, break_on=["nan"], on_anomaly="stop"))
    final = server.wait_for(job.id, timeout=240)
    assert final.state == "failed" and final.error is not None and final.error.type == "anomaly"
    first = events_of(server, job.id, "anomaly")[0]
    assert f"step {first['step']}" in final.error.message and str(planted_at) in final.error.message
    assert final.progress.step < final.progress.max_steps  # it stopped there


def test_no_false_alarm_on_a_normal_run(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["debug"] = {"break_on": ["nan", "spike", "grad_spike"]}
    # 1e-2 (tiny_spec's) sometimes makes a real 8x loss spike at the second epoch's start: not a normal run
    tiny_spec["training"]["learning_rate"] = 3e-3
    job = server.client.submit(tiny_spec)
    final = server.wait_for(job.id, timeout=240)
    assert final.state == "completed", final.error
    assert events_of(server, job.id, "anomaly") == []


ATTACHED_SCRIPT = '''
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)
from finetune_studio import StudioCallback
from finetune_studio.testing.tiny_models import classification_dataset

tokenizer = AutoTokenizer.from_pretrained({model!r})
data = classification_dataset(tokenizer, 40, seed=3, planted=(17, {planted!r}, "negative"))
model = AutoModelForSequenceClassification.from_pretrained({model!r}, num_labels=2)
args = TrainingArguments({out!r}, num_train_epochs=1, per_device_train_batch_size=8, logging_steps=1,
                         report_to="none", save_strategy="no", use_cpu=True)
Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[StudioCallback(name="hooked", break_on=["nan"], on_anomaly="stop")]).train()
'''


def test_studio_callback_break_on_catches_an_attached_scripts_nan(
        server: RunningServer, poisoned_bert: Path, tmp_path: Path) -> None:
    """`StudioCallback(break_on=...)`: the same detectors for a user's own Trainer, through a forward hook."""
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(ATTACHED_SCRIPT.format(model=str(poisoned_bert), planted=PLANTED, out=str(tmp_path / "out")))
    done = subprocess.run([sys.executable, str(script)], cwd=server.data_dir.parent, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = [j for j in server.client.jobs() if j.name == "hooked"]
    final = server.wait_for(run.id, timeout=30)
    assert final.state == "failed" and final.error is not None and final.error.type == "anomaly"
    [anomaly] = events_of(server, run.id, "anomaly")
    assert anomaly["kind"] == "nan" and anomaly["saved_to"] and Path(anomaly["saved_to"]).is_file()
    assert f"step {anomaly['step']}" in final.error.message
