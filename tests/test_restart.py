"""Server restart: jobs and metrics survive, a job whose worker died is `interrupted`, and Resume
continues the step count from the last checkpoint without duplicate steps."""

from __future__ import annotations

import signal
import time
from typing import Any

from conftest import RunningServer, start_server


def test_restart_interrupts_then_resume_continues_without_duplicate_steps(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"].update(epochs=3, save_strategy="steps", save_steps=10, save_total_limit=None)
    job = server.client.submit(tiny_spec)
    while server.client.job(job.id).progress.step < 25:
        time.sleep(0.1)
    before = server.client.metrics(job.id, names="train/loss")["series"]["train/loss"]["step"]
    server.stop(signal.SIGKILL)  # the server dies; its worker loses its pipes

    restarted = start_server(server.data_dir)
    server.process, server.client = restarted.process, restarted.client
    interrupted = server.wait_for(job.id)
    assert interrupted.state == "interrupted" and interrupted.error and interrupted.error.type == "interrupted"
    kept = server.client.metrics(job.id, names="train/loss")["series"]["train/loss"]["step"]
    assert kept[:len(before)] == before  # what was stored before the crash survives

    resumed = server.client.resume(job.id)
    assert resumed.attempt == 2 and resumed.state == "queued"
    done = server.wait_for(job.id)
    assert done.state == "completed", done.error
    steps = server.client.metrics(job.id, names="train/loss")["series"]["train/loss"]["step"]
    assert steps == list(range(1, 61))  # every step once, across both attempts
    logs = [line["text"] for line in server.client.request("GET", f"/api/jobs/{job.id}/logs?limit=5000")["lines"]]
    assert any("resuming from" in line and "checkpoint-" in line for line in logs)
