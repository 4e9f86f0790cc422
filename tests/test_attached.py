"""Issue 10: no attached run is stuck. A script with StudioCallback that raises reports the exception as
its run's error; one killed with -9 (or cut off) is ended by the server's watchdog within a minute."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import RunningServer, start_server
from finetune_studio.delivery import ReporterClient
from finetune_studio.wire import Job

TIMEOUT = 4  # FINETUNE_STUDIO_RUN_TIMEOUT of these tests' server (the default is 60 s)


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / ".finetune-studio", extra_env={"FINETUNE_STUDIO_RUN_TIMEOUT": str(TIMEOUT)})
    yield running
    running.stop()


def _script(folder: Path, tiny_bert: Path, at_step_3: str) -> Path:
    """A user's training script with StudioCallback; a callback runs `at_step_3` at the end of step 3."""
    script = folder / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        from finetune_studio.testing.tiny_models import classification_dataset
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback,
                                  TrainingArguments, DataCollatorWithPadding)
        from finetune_studio import StudioCallback

        class AtStep3(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 3:
                    print("step 3", flush=True)
                    {at_step_3}

        tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert)!r})
        data = classification_dataset(tokenizer, 64)
        model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert)!r}, num_labels=2)
        args = TrainingArguments({str(folder / "out")!r}, num_train_epochs=1, per_device_train_batch_size=8,
                                 logging_steps=1, report_to="none", save_strategy="no", use_cpu=True)
        Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                callbacks=[StudioCallback(name="my script"), AtStep3()]).train()
    """))
    return script


def _the_run(server: RunningServer) -> Job:
    [job] = [j for j in server.client.jobs() if j.kind == "attached"]
    return job


def _ended_within(server: RunningServer, job_id: str, seconds: float) -> Job:
    deadline = time.time() + seconds
    while time.time() < deadline:
        job = server.client.job(job_id)
        if job.finished_at is not None:
            return job
        time.sleep(0.1)
    raise AssertionError(f"run {job_id} is still {server.client.job(job_id).state} after {seconds} s")


def test_attached_script_that_raises_reports_the_exception(quick_server: RunningServer, tiny_bert: Path,
                                                           tmp_path: Path) -> None:
    """Issue 10: an attached script that crashed left its run `running` forever."""
    script = _script(tmp_path, tiny_bert, 'raise ValueError("the data loader broke at step 3")')
    completed = subprocess.run([sys.executable, str(script)], cwd=quick_server.data_dir.parent,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1 and "ValueError: the data loader broke" in completed.stderr  # still printed
    job = _ended_within(quick_server, _the_run(quick_server).id, 2)  # reported by the script, not the watchdog
    assert job.state == "failed" and job.error is not None
    assert job.error.type == "ValueError"
    assert "the data loader broke at step 3" in job.error.message
    assert "in on_step_end" in job.error.message  # the last frames
    log = [line["text"] for line in quick_server.client.request("GET", f"/api/jobs/{job.id}/logs")["lines"]]
    assert log[0] == "Traceback (most recent call last):" and log[-1].startswith("ValueError: the data loader")
    steps = quick_server.client.metrics(job.id)["series"]["train/loss"]["step"]
    assert steps == [1, 2]  # step 3 raised before its log


def test_attached_script_killed_with_sigkill_ends_its_run(quick_server: RunningServer, tiny_bert: Path,
                                                          tmp_path: Path) -> None:
    script = _script(tmp_path, tiny_bert, "time.sleep(600)")
    process = subprocess.Popen([sys.executable, str(script)], cwd=quick_server.data_dir.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        assert "step 3\n" in iter(process.stdout.readline, "")  # the Trainer prints its logs too
        process.kill()
        process.wait()
        killed = time.time()
        job = _ended_within(quick_server, _the_run(quick_server).id, 60)
    finally:
        process.kill()
        process.wait()
    assert time.time() - killed < 10  # the watchdog looks every TIMEOUT / 4 s
    assert job.state == "failed" and job.error is not None and job.error.type == "process_gone"
    assert f"({process.pid})" in job.error.message


def test_silent_run_is_interrupted_and_a_heartbeat_keeps_a_run_alive(quick_server: RunningServer,
                                                                     tmp_path: Path) -> None:
    """A run whose script cannot be checked by pid (none given) ends when it falls silent; a reporter
    that sends nothing but heartbeats keeps its run running."""
    silent = quick_server.client.request("POST", "/api/runs", json={"name": "silent"})["id"]
    beating = quick_server.client.request("POST", "/api/runs", json={"name": "beating"})["id"]
    client = ReporterClient(quick_server.url, quick_server.token, beating, 1, tmp_path / "spool.jsonl")
    client.heartbeat_seconds = 0.5
    try:
        job = _ended_within(quick_server, silent, TIMEOUT + 10)
        assert job.state == "interrupted" and job.error is not None and job.error.type == "no_heartbeat"
        time.sleep(1.5)
        assert quick_server.client.job(beating).state == "running"
    finally:
        client.close()


def test_attached_run_shows_its_device_task_name_and_arguments(server: RunningServer, tiny_bert: Path,
                                                               tmp_path: Path) -> None:
    """Issue 17: an attached run showed `Device –`, the task `custom` and its output folder's name."""
    script = _script(tmp_path, tiny_bert, "pass")
    script = script.rename(tmp_path / "sentiment_experiment.py")
    text = script.read_text().replace('StudioCallback(name="my script")', "StudioCallback()")
    script.write_text(text)
    completed = subprocess.run([sys.executable, str(script)], cwd=server.data_dir.parent,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    run = _the_run(server)
    assert (run.name, run.task, run.device) == ("sentiment_experiment", "text-classification", "cpu")
    assert run.state == "completed" and run.spec is None and run.training_args is not None
    assert run.training_args["per_device_train_batch_size"] == 8 and run.training_args["num_train_epochs"] == 1
