"""A job as Ray Train workers (`[resources] executor = "ray"`) on a real local Ray cluster that the test
starts (`ray start --head` on a free port), 2 CPU workers with gloo, the tiny BERT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import RunningServer, start_server
from task_matrix import LORA, TASKS, check_task_run, task_spec, tiny_models

# Text classification: the first test here (and with LoRA under torchrun); seq2seq with LoRA: the
# killed-worker test, which resumes its adapter from Ray's storage.
RAY_TASKS = [task for task in TASKS if task != "seq2seq"]

RAY_BIN = Path(sys.executable).parent / "ray"
JOB_ACTORS = ("ray::Relay", "ray::RayTrainWorker", "ray::TrainController", "ray::PlacementGroupCleaner")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head on a free port; `--block` keeps it this process's child, so teardown stops only it."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    process = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # No draining at the end (30 s by default, all of it spent here): nothing runs on the cluster by then.
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"})
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert process.poll() is None and time.time() < deadline, "ray start --head did not come up"
        time.sleep(0.5)
    yield address
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("ray") / ".finetune-studio",
                           extra_env={"RAY_USAGE_STATS_ENABLED": "0"})
    yield running
    running.stop()


def job_actors() -> list[psutil.Process]:
    """Live processes of the job's Ray actors (Ray titles an actor's process `ray::<class>...`)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if command.startswith(JOB_ACTORS):
            found.append(process)
    return found


def no_job_actors(timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while job_actors():
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


def ray_spec(tiny_spec: dict[str, Any], address: str, **training: Any) -> dict[str, Any]:
    tiny_spec["training"].update(batch_size=8, **training)
    tiny_spec["resources"] = {"executor": "ray", "processes": 2, "ray_address": address}
    return tiny_spec


def wait_for_step(server: RunningServer, job_id: str, step: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while (job := server.client.job(job_id)).progress.step < step:
        assert job.state in ("queued", "running"), job
        assert time.time() < deadline, f"job {job_id} did not reach step {step}"
        time.sleep(0.2)


def registered_checkpoint(job_dir: Path, timeout: float = 300) -> int:
    """The step of the first checkpoint that Ray's controller has registered (a worker killed before that
    restarts from the start: the report was not collected yet)."""
    snapshot = job_dir / "ray" / "attempt-1" / "checkpoint_manager_snapshot.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            latest = json.loads(snapshot.read_text(encoding="utf-8"))["latest_checkpoint_result"]
        except (OSError, ValueError, KeyError):
            latest = None
        if latest:
            return int(latest["metrics"]["step"])
        time.sleep(0.2)
    raise AssertionError(f"Ray registered no checkpoint in {timeout}s")


def log_text(server: RunningServer, job_id: str) -> str:
    lines = server.client.request("GET", f"/api/jobs/{job_id}/logs", params={"limit": 10000})["lines"]
    return "\n".join(line["text"] for line in lines)


def test_ray_job_with_two_workers_completes_with_live_metrics(
        ray_cluster: str, ray_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    job = ray_server.client.submit(ray_spec(tiny_spec, ray_cluster, epochs=1, save_strategy="epoch"))
    events = list(ray_server.client.stream(job.id))
    final = ray_server.client.job(job.id)
    assert final.state == "completed", (final.error, log_text(ray_server, job.id)[-4000:])
    assert final.device == f"ray ×2 (CPU, {ray_cluster})"
    assert "PlacementGroupCleaner" not in log_text(ray_server, job.id)  # its State API warnings, once a second
    live = [e for e in events if e.type == "metric" and "train/loss" in e.data["values"]]
    assert live and live[0].seq < events[-1].seq  # metrics came over SSE while it ran
    series = ray_server.client.metrics(job.id, names="train/loss,eval/accuracy")["series"]
    assert series["train/loss"]["step"] == list(range(1, 11))  # 160 rows / (8 × 2 workers): rank 0 alone reports
    assert series["eval/accuracy"]["step"] == [10]
    assert final.progress.step == final.progress.max_steps == 10
    assert (Path(final.output_dir) / "config.json").is_file()
    assert list((Path(final.output_dir).parent / "ray").rglob("checkpoint-10")), "Ray kept the checkpoint"
    assert no_job_actors()


@pytest.mark.parametrize("task", RAY_TASKS)
def test_every_task_trains_as_two_ray_workers(task: str, ray_cluster: str, ray_server: RunningServer,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each task as 2 Ray Train workers (LoRA for those that train without it under torchrun): each step
    once, and the task's evaluation at the end on predictions gathered from both workers."""
    lora = task in LORA["ray"]
    spec = task_spec(task, tiny_models(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp(task),
                     {"executor": "ray", "processes": 2, "ray_address": ray_cluster}, lora)
    job = ray_server.wait_for(ray_server.client.submit(spec).id, timeout=300)
    check_task_run(ray_server, job, task, lora)
    assert log_text(ray_server, job.id).count("attempt 1: preparing") == 1  # rank 1's stdout stays out


def test_a_killed_ray_worker_is_restarted_from_the_last_checkpoint(
        ray_cluster: str, ray_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Seq2seq with LoRA (its LoRA run under Ray): the adapter's checkpoints go to Ray's storage, the
    restarted workers resume from there, and the run ends with its evaluation."""
    spec = task_spec("seq2seq", tiny_models(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("killed"),
                     {"executor": "ray", "processes": 2, "ray_address": ray_cluster}, lora=True, max_steps=30,
                     save_strategy="steps", save_steps=5, eval_steps=30)
    job = ray_server.client.submit(spec)
    registered_checkpoint(ray_server.data_dir / "jobs" / job.id)
    wait_for_step(ray_server, job.id, 12)
    workers = [p for p in job_actors() if " ".join(p.cmdline()).startswith("ray::RayTrainWorker")]
    assert len(workers) == 2, workers
    os.kill(workers[-1].pid, signal.SIGKILL)
    final = ray_server.wait_for(job.id, timeout=400)
    check_task_run(ray_server, final, "seq2seq", lora=True, steps=30)  # no step missing, none twice
    assert "Ray restarted the workers: resuming from" in log_text(ray_server, job.id)
    kept = list((ray_server.data_dir / "jobs" / job.id / "ray").rglob("checkpoint-*"))
    assert kept and all((folder / "adapter_model.safetensors").is_file() for folder in kept), kept
    assert no_job_actors()


def test_cancel_stops_the_ray_run_and_leaves_no_actor(
        ray_cluster: str, ray_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    job = ray_server.client.submit(ray_spec(tiny_spec, ray_cluster, max_steps=2000, save_strategy="no",
                                            eval_strategy="no"))
    wait_for_step(ray_server, job.id, 3)
    assert job_actors()
    ray_server.client.cancel(job.id)
    final = ray_server.wait_for(job.id, timeout=180)
    assert final.state == "cancelled", (final.error, log_text(ray_server, job.id)[-4000:])
    assert list((Path(final.output_dir).parent / "checkpoints").glob("checkpoint-*")), "a checkpoint first"
    assert no_job_actors()
