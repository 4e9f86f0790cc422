"""Issue 10: atomic checkpoints. A worker killed while saving leaves no partial newest checkpoint that a
resume would pick; resume takes the newest complete one; a crash right after a checkpoint loses no point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

from conftest import RunningServer
from finetune_studio.checkpoints import last_complete


def _worker(job_id: str, timeout: float = 120) -> psutil.Process:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if "finetune_studio.worker" in cmdline and job_id in cmdline:
                return process
        time.sleep(0.05)
    raise AssertionError(f"no worker process for {job_id}")


def _loss_steps(server: RunningServer, job_id: str) -> list[int]:
    series = server.client.request("GET", f"/api/jobs/{job_id}/metrics",
                                   params={"names": "train/loss", "max_points": 100000})["series"]
    return list(series["train/loss"]["step"])


def _stepwise(spec: dict[str, Any], save_steps: int) -> dict[str, Any]:
    spec["training"].update({"epochs": 3, "eval_strategy": "no", "save_strategy": "steps",
                             "save_steps": save_steps, "save_total_limit": None})
    return spec


def test_last_complete_skips_a_partial_newest_checkpoint(tmp_path: Path) -> None:
    for step, state in ((4, '{"global_step": 4}'), (8, '{"global_step": 8}'), (12, None), (16, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "tmp-checkpoint-20" / "checkpoint-20").mkdir(parents=True)
    (tmp_path / "tmp-checkpoint-20" / "checkpoint-20" / "trainer_state.json").write_text("{}")
    assert last_complete(tmp_path) == tmp_path / "checkpoint-8"
    assert last_complete(tmp_path / "missing") is None


def test_worker_killed_while_saving_leaves_no_newest_checkpoint(tiny_bert: Path, tmp_path: Path) -> None:
    """A real Trainer with atomic checkpoints, killed (-9) just before its second checkpoint becomes
    visible: the first one is the newest complete one; the second never appears under its final name."""
    script = tmp_path / "train.py"
    out = tmp_path / "out"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        from finetune_studio.testing.tiny_models import classification_dataset
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer,
                                  TrainingArguments, DataCollatorWithPadding)
        from finetune_studio.checkpoints import atomic_trainer

        tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert)!r})
        data = classification_dataset(tokenizer, 64)
        model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert)!r}, num_labels=2)
        args = TrainingArguments({str(out)!r}, max_steps=8, per_device_train_batch_size=8, save_steps=4,
                                 report_to="none", use_cpu=True)
        trainer = atomic_trainer(Trainer)(model=model, args=args, train_dataset=data,
                                          data_collator=DataCollatorWithPadding(tokenizer))
        commits = []
        def commit():
            commits.append(1)
            if len(commits) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        trainer.before_commit = commit
        trainer.train()
    """))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-4", "tmp-checkpoint-8"]
    assert last_complete(out) == out / "checkpoint-4"


def test_partial_newest_checkpoint_resume_uses_the_previous_one_and_completes(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Issue 10: a partial newest checkpoint (left by a worker killed while saving, before checkpoints
    were atomic) made every resume fail with FileNotFoundError .../trainer_state.json."""
    job = server.client.submit(_stepwise(tiny_spec, save_steps=10))
    checkpoints = server.data_dir / "jobs" / job.id / "checkpoints"
    deadline = time.time() + 120
    while not (checkpoints / "checkpoint-20").is_dir():
        assert time.time() < deadline, "no checkpoint-20"
        time.sleep(0.05)
    _worker(job.id).kill()
    assert server.wait_for(job.id).state == "failed"
    newest = max((p for p in checkpoints.iterdir() if p.name.startswith("checkpoint-")),
                 key=lambda p: int(p.name.split("-")[1]))
    partial = checkpoints / f"checkpoint-{int(newest.name.split('-')[1]) + 10}"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes((newest / "model.safetensors").read_bytes()[:1000])
    (checkpoints / f"tmp-{partial.name}").mkdir()  # a staging folder of a kill while saving

    server.client.resume(job.id)
    done = server.wait_for(job.id)
    assert done.state == "completed", done.error
    lines = [line["text"] for line in server.client.request("GET", f"/api/jobs/{job.id}/logs")["lines"]]
    assert f"resuming from {newest}" in lines
    assert last_complete(checkpoints) is not None
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith("tmp-")]


def test_kill_right_after_a_checkpoint_loses_no_point(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Issue 10: a crash just after a checkpoint lost the reporter's unsent points for good (the resumed
    attempt starts after the checkpoint): 467 of 500 points. Now the reporter is flushed before the
    checkpoint is committed."""
    job = server.client.submit(_stepwise(tiny_spec, save_steps=15))
    checkpoints = server.data_dir / "jobs" / job.id / "checkpoints"
    worker = _worker(job.id)
    deadline = time.time() + 120
    while not (checkpoints / "checkpoint-30").is_dir():
        assert time.time() < deadline, "no checkpoint-30"
        time.sleep(0.002)
    worker.kill()
    assert server.wait_for(job.id).state == "failed"
    server.client.resume(job.id)
    done = server.wait_for(job.id)
    assert done.state == "completed", done.error
    max_steps = done.progress.max_steps
    assert max_steps > 30
    assert _loss_steps(server, job.id) == list(range(1, max_steps + 1))
    state = json.loads((last_complete(checkpoints) / "trainer_state.json").read_text())  # type: ignore[operator]
    assert state["global_step"] == max_steps


def test_points_before_a_checkpoint_are_safe_before_it_counts(tiny_bert: Path, tmp_path: Path) -> None:
    """The reporter is flushed before the checkpoint folder gets its final name: with the server away and
    nothing sent on its own (no timer, no urgency), a worker killed (-9) right after its checkpoint has
    spooled every point up to that checkpoint's step."""
    script = tmp_path / "train.py"
    out, spool = tmp_path / "out", tmp_path / "spool.jsonl"
    script.write_text(textwrap.dedent(f"""
        import os, signal, socket, sys
        from pathlib import Path
        from finetune_studio.testing.tiny_models import classification_dataset
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback,
                                  TrainingArguments, DataCollatorWithPadding)
        from finetune_studio import delivery, reporter
        from finetune_studio.checkpoints import atomic_trainer

        delivery.FLUSH_SECONDS, delivery.URGENT = 600.0, frozenset()  # only a flush sends
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        client = delivery.ReporterClient(f"http://127.0.0.1:{{closed_port}}", "token-of-no-server", "job", 1,
                                         Path({str(spool)!r}))

        class KillAfterCheckpoint(TrainerCallback):  # runs before StudioCallback's own on_save flush
            def on_save(self, args, state, control, **kwargs):
                if state.global_step == 8:
                    os.kill(os.getpid(), signal.SIGKILL)

        tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert)!r})
        data = classification_dataset(tokenizer, 128)
        model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert)!r}, num_labels=2)
        args = TrainingArguments({str(out)!r}, max_steps=12, per_device_train_batch_size=8, save_steps=4,
                                 logging_steps=1, report_to="none", use_cpu=True)
        trainer = atomic_trainer(Trainer)(model=model, args=args, train_dataset=data,
                                          data_collator=DataCollatorWithPadding(tokenizer),
                                          callbacks=[KillAfterCheckpoint(), reporter.StudioCallback(client)])
        trainer.before_commit = client.flush
        trainer.train()
    """))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
    assert last_complete(out) == out / "checkpoint-8"
    steps = [event["data"]["step"] for line in spool.read_text().splitlines()
             for event in json.loads(line)["events"]
             if event["type"] == "metric" and "train/loss" in event["data"]["values"]]
    assert steps == list(range(1, 9))
