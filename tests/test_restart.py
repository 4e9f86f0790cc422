"""Server restarts with real processes and signals: a worker outlives a `kill -9` of its server and is
re-adopted by the next one; a graceful stop interrupts jobs (resumable) and removes server.json."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from conftest import RunningServer, start_server


def logged_lines(server: RunningServer, job_id: str) -> list[str]:
    return [line["text"] for line in server.client.request("GET", f"/api/jobs/{job_id}/logs?limit=5000")["lines"]]


def worker_pid(server: RunningServer, job_id: str) -> int:
    pid: int = json.loads((server.data_dir / "jobs" / job_id / "worker.json").read_text())["pid"]
    return pid


def loss_steps(server: RunningServer, job_id: str) -> list[int]:
    steps: list[int] = server.client.metrics(job_id, names="train/loss")["series"]["train/loss"]["step"]
    return steps


def test_a_worker_outlives_a_killed_server_and_the_next_server_sees_its_job_complete(
        tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    """kill -9 of the server used to kill its workers (EPIPE on their next print) and lose their last log
    lines; the restarted server marked the job interrupted."""
    # 240 steps, one per log: long enough to be still running once the next server is up (120 were not,
    # once workers exited promptly), short enough to wait for
    tiny_spec["training"].update(epochs=12, save_strategy="steps", save_steps=10)
    steps = 240
    first = start_server(tmp_path / ".finetune-studio")
    job = first.client.submit(tiny_spec)
    while first.client.job(job.id).progress.step < 3:
        time.sleep(0.05)
    worker = worker_pid(first, job.id)
    first.stop(signal.SIGKILL)
    time.sleep(1)  # the worker trains, prints and spools while no server runs

    second = start_server(first.data_dir)
    try:
        assert second.client.job(job.id).state == "running"  # re-adopted, not interrupted
        assert psutil.pid_exists(worker)
        done = second.wait_for(job.id)
        assert done.state == "completed" and done.attempt == 1, done.error
        assert loss_steps(second, job.id) == list(range(1, steps + 1))  # every step once, none lost
        lines = logged_lines(second, job.id)
        printed_logs = [line for line in lines if line.startswith("{'loss'")]
        assert len(printed_logs) == steps and len(set(printed_logs)) == steps  # each printed line kept, once
        assert sum(line.startswith("attempt 1: preparing") for line in lines) == 1
        assert sum(line.startswith("saved the model") for line in lines) == 1
    finally:
        second.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker, signal.SIGKILL)  # only when the test failed early


def test_graceful_stop_interrupts_the_job_removes_server_json_and_resume_continues(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """A SIGTERM'd server recorded its jobs as `failed / worker_crashed (exit code 0)` and left server.json."""
    tiny_spec["training"].update(epochs=3, save_strategy="steps", save_steps=10)
    job = server.client.submit(tiny_spec)
    while server.client.job(job.id).progress.step < 5:
        time.sleep(0.05)
    worker = worker_pid(server, job.id)
    server.stop(signal.SIGTERM)
    assert server.process.returncode in (0, -signal.SIGTERM)  # by itself, in time (uvicorn re-raises SIGTERM)
    assert not (server.data_dir / "server.json").exists()
    assert not psutil.pid_exists(worker)  # it saved a checkpoint and exited

    restarted = start_server(server.data_dir)
    server.process, server.client = restarted.process, restarted.client
    interrupted = server.client.job(job.id)
    assert interrupted.state == "interrupted" and interrupted.error and interrupted.error.type == "interrupted"
    assert server.client.resume(job.id).attempt == 2
    done = server.wait_for(job.id)
    assert done.state == "completed", done.error
    assert loss_steps(server, job.id) == list(range(1, 61))  # every step once, across both attempts
    assert any("resuming from" in line and "checkpoint-" in line for line in logged_lines(server, job.id))


def test_a_worker_that_died_while_no_server_ran_makes_its_job_interrupted_with_its_lines_kept(
        tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    """Only a worker that really died makes its job interrupted; what it printed before is kept."""
    tiny_spec["training"].update(epochs=6, save_strategy="steps", save_steps=10)
    first = start_server(tmp_path / ".finetune-studio")
    job = first.client.submit(tiny_spec)
    while first.client.job(job.id).progress.step < 3:
        time.sleep(0.05)
    worker = worker_pid(first, job.id)
    first.stop(signal.SIGKILL)
    os.killpg(worker, signal.SIGKILL)

    second = start_server(first.data_dir)
    try:
        interrupted = second.client.job(job.id)
        assert interrupted.state == "interrupted", interrupted
        assert interrupted.error and "while no server was running" in interrupted.error.message
        lines = logged_lines(second, job.id)
        assert sum(line.startswith("attempt 1: preparing") for line in lines) == 1
        assert sum(line.startswith("{'loss'") for line in lines) >= 3
    finally:
        second.stop()
