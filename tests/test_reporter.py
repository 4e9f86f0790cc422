"""The reporter and ingest: idempotent batches, spooling while the server is away, attached runs."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import RunningServer
from finetune_studio.reporter import ReporterClient


def _attached(server: RunningServer) -> str:
    return server.client.request("POST", "/api/runs", json={"name": "manual"})["id"]  # type: ignore[no-any-return]


def test_the_same_batch_twice_is_stored_once(server: RunningServer) -> None:
    job_id = _attached(server)
    batch = {"attempt": 1, "events": [
        {"seq": i, "type": "metric", "time": time.time(), "data": {"step": i, "values": {"train/loss": 1 / i}}}
        for i in range(1, 11)]}
    first = server.client.request("POST", f"/api/jobs/{job_id}/events", json=batch)
    again = server.client.request("POST", f"/api/jobs/{job_id}/events", json=batch)
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (10, 0, 10)
    series = server.client.metrics(job_id)["series"]["train/loss"]
    assert series["step"] == list(range(1, 11))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reporter_spools_while_the_server_is_down_and_delivers_later(server: RunningServer,
                                                                      tmp_path: Path) -> None:
    job_id = _attached(server)
    spool = tmp_path / "spool.jsonl"
    down = ReporterClient(f"http://127.0.0.1:{_closed_port()}", server.token, job_id, 1, spool)
    for step in range(1, 101):
        down.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step, "train/grad_norm": float("nan")}})
    down.close()
    assert spool.is_file() and server.client.metrics(job_id)["series"] == {}

    back = ReporterClient(server.url, server.token, job_id, 1, spool)
    back._seq = 100  # the same attempt goes on numbering where it stopped
    back.emit("metric", {"step": 101, "values": {"train/loss": 0.001}})
    back.close()
    assert not spool.exists()
    series = server.client.metrics(job_id)["series"]
    assert series["train/loss"]["step"] == list(range(1, 102))
    assert series["train/grad_norm"]["value"][0] is None  # a NaN point is kept, as null


def test_plain_trainer_script_with_studio_callback_becomes_an_attached_run(
        server: RunningServer, tiny_bert: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from tiny_models import sentences
        import datasets
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer,
                                  TrainingArguments, DataCollatorWithPadding)
        from finetune_studio import StudioCallback

        tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert)!r})
        rows = sentences(64)
        data = datasets.Dataset.from_dict({{"text": [t for t, _ in rows],
                                           "label": [int(l == "positive") for _, l in rows]}})
        data = data.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
        model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert)!r}, num_labels=2)
        args = TrainingArguments({str(tmp_path / "out")!r}, num_train_epochs=1, per_device_train_batch_size=8,
                                 logging_steps=1, report_to="none", save_strategy="no")
        Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                callbacks=[StudioCallback(name="my script")]).train()
    """))
    # The script finds the server the way a user's does: .finetune-studio/server.json in its folder or above.
    project = server.data_dir.parent
    completed = subprocess.run([sys.executable, str(script)], cwd=project, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    [job] = [j for j in server.client.jobs() if j.kind == "attached"]
    assert job.name == "my script" and job.state == "completed"
    assert server.client.metrics(job.id)["series"]["train/loss"]["step"] == list(range(1, 9))


def test_callback_without_a_server_warns_once_and_never_stops_training(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from finetune_studio import StudioCallback

    callback = StudioCallback()
    args = TrainingArguments(str(tmp_path / "out"), report_to="none")
    state = TrainerState()
    state.max_steps = 10
    callback.on_train_begin(args, state, TrainerControl())
    for step in range(1, 4):
        state.global_step = step
        callback.on_log(args, state, TrainerControl(), logs={"loss": 0.5})
    callback.on_train_end(args, state, TrainerControl())
    spooled = (tmp_path / "out" / "finetune-studio-spool.jsonl").read_text().splitlines()
    assert len(spooled) >= 1 and '"train/loss"' in "".join(spooled)


