"""Running one task job through the real server, for the tests of issue 6 (`test_tasks_*.py`)."""

from __future__ import annotations

from typing import Any

from conftest import RunningServer
from finetune_studio.wire import Job

# Few steps and one evaluation at the end: each job takes seconds on a CPU, most of it the worker's start.
QUICK_TRAINING = {"batch_size": 8, "eval_batch_size": 16, "learning_rate": 1e-2, "logging_steps": 2,
                  "eval_strategy": "epoch", "save_strategy": "no", "warmup_steps": 0}


def run_to_completion(server: RunningServer, spec: dict[str, Any], timeout: float = 300) -> Job:
    """Submit `spec`, wait, and return the finished job; a failure shows the job's error and log tail."""
    job = server.client.submit(spec)
    final = server.wait_for(job.id, timeout=timeout)
    if final.state != "completed":
        lines = server.client.request("GET", f"/api/jobs/{job.id}/logs")["lines"]
        tail = "\n".join(line["text"] for line in lines[-40:])
        raise AssertionError(f"job ended {final.state}: {final.error}\n{tail}")
    return final


def samples(server: RunningServer, job_id: str) -> dict[str, Any]:
    """The samples of the job's latest evaluation (`/evals/latest`), as {step, samples}."""
    latest = server.client.request("GET", f"/api/jobs/{job_id}/evals/latest")
    if latest is None:
        return {"step": None, "samples": []}
    return {"step": latest["data"].get("step"), "samples": latest["data"].get("samples", [])}


def metric_names(server: RunningServer, job_id: str) -> set[str]:
    return set(server.client.metrics(job_id)["series"])
