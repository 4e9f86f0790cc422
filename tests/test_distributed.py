"""One job as several DDP processes under torchrun: real torchrun, gloo on the CPU, the tiny BERT.

`[resources] processes = 2` is the CPU twin of `gpus = 2`: the same torchrun path, so CI runs it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import RunningServer, start_server
from task_matrix import LORA, TASKS, check_task_run, task_spec, tiny_models


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("distributed") / ".finetune-studio")
    yield running
    running.stop()


def ranks_of(job_pid: int, world: int, timeout: float = 60) -> list[psutil.Process]:
    """torchrun's rank processes, once all are started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        children = psutil.Process(job_pid).children()
        if len(children) == world:
            return children
        time.sleep(0.1)
    raise AssertionError(f"torchrun {job_pid} did not start {world} ranks")


def wait_for_step(server: RunningServer, job_id: str, step: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while server.client.job(job_id).progress.step < step:
        assert time.time() < deadline, f"job {job_id} did not reach step {step}"
        assert server.client.job(job_id).state == "running", server.client.job(job_id)
        time.sleep(0.2)


def gone(processes: list[psutil.Process], timeout: float = 30) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


def log_text(server: RunningServer, job_id: str) -> str:
    lines = server.client.request("GET", f"/api/jobs/{job_id}/logs", params={"limit": 10000})["lines"]
    return "\n".join(line["text"] for line in lines)


def test_two_cpu_processes_train_like_one_with_each_step_once(
        shared_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Global batch 16 either way: 1 process × 16, or 2 processes × 8 (gloo)."""
    tiny_spec["training"].update(epochs=3, batch_size=16)
    single = shared_server.client.submit(tiny_spec)
    tiny_spec["training"]["batch_size"] = 8
    tiny_spec["resources"] = {"processes": 2}
    double = shared_server.client.submit(tiny_spec)
    one, two = shared_server.wait_for(single.id), shared_server.wait_for(double.id)
    assert one.state == "completed", one.error
    assert two.state == "completed", (two.error, log_text(shared_server, two.id)[-3000:])
    assert two.device == "cpu ×2 (gloo)" and one.device == "cpu"
    assert two.progress.step == two.progress.max_steps == one.progress.max_steps == 30  # 160 rows / 16, 3 epochs

    series = shared_server.client.metrics(two.id, names="train/loss,eval/loss,eval/accuracy")["series"]
    assert series["train/loss"]["step"] == list(range(1, 31))  # rank 0 alone reports: each step once
    assert len(series["eval/loss"]["step"]) == 3
    reference = shared_server.client.metrics(one.id, names="eval/loss,eval/accuracy")["series"]
    # Same data, same global batch; the samplers shuffle differently, so within noise, not equal.
    # (measured: eval loss 0.035 vs 0.020, accuracy 1.0 both, after 3 epochs)
    assert abs(series["eval/loss"]["value"][-1] - reference["eval/loss"]["value"][-1]) < 0.1
    assert abs(series["eval/accuracy"]["value"][-1] - reference["eval/accuracy"]["value"][-1]) <= 0.05

    text = log_text(shared_server, two.id)
    assert "batch 8 per process × 2 processes × 1 accumulation = global batch 16" in text
    assert "[rank0]:attempt 1: preparing" in text  # rank 0's stdout, prefixed
    assert "[rank1]:attempt 1" not in text  # the other ranks' stdout stays in their own files
    assert (Path(two.output_dir) / "config.json").is_file()
    assert (Path(two.output_dir).parent / "result.json").is_file()


@pytest.mark.parametrize("task", TASKS)  # text classification: the test above, and with LoRA the cancel test
def test_every_task_trains_as_two_ddp_processes(
        task: str, shared_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each task as 2 gloo processes (LoRA for some, for the others under Ray): each step once, and the
    task's evaluation (generation, span search, tag metrics) on predictions gathered from both ranks."""
    lora = task in LORA["ddp"]
    spec = task_spec(task, tiny_models(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp(task),
                     {"processes": 2}, lora)
    job = shared_server.wait_for(shared_server.client.submit(spec).id, timeout=240)
    check_task_run(shared_server, job, task, lora)
    assert job.device == "cpu ×2 (gloo)"


def two_ranks_at_step(server: RunningServer, spec: dict[str, Any], max_steps: int, step: int,
                      **training: Any) -> tuple[Any, psutil.Process, list[psutil.Process]]:
    """Submit `spec` as a 2-process CPU job and return it, its torchrun and its ranks once it logged `step`."""
    spec["training"].update({"max_steps": max_steps, "batch_size": 8, "save_strategy": "no", "eval_strategy": "no",
                             **training})
    spec["resources"] = {"processes": 2}
    job = server.client.submit(spec)
    server.wait_for(job.id, {"running"})
    pid = worker_pid(server, job.id)
    torchrun = psutil.Process(pid)
    ranks = ranks_of(pid, 2)
    wait_for_step(server, job.id, step)
    return job, torchrun, ranks


def test_cancel_stops_every_rank_and_resume_continues_with_the_same_processes(
        shared_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """With LoRA (text classification's LoRA run under DDP): resume restores the adapter's checkpoint."""
    tiny_spec["lora"] = {"r": 4}
    job, torchrun, ranks = two_ranks_at_step(shared_server, tiny_spec, max_steps=60, step=3,
                                             eval_strategy="steps", eval_steps=60)
    shared_server.client.cancel(job.id)
    cancelled = shared_server.wait_for(job.id, timeout=120)
    assert cancelled.state == "cancelled", cancelled.error
    assert gone([*ranks, torchrun])  # checked by pid: no rank and no torchrun left
    checkpoints = sorted((Path(cancelled.output_dir).parent / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "a cancelled job keeps a checkpoint to resume from"
    stopped_at = int(checkpoints[-1].name.split("-")[1])

    shared_server.client.resume(job.id)
    resumed = shared_server.wait_for(job.id, timeout=240)
    assert resumed.state == "completed", resumed.error
    assert resumed.device == "cpu ×2 (gloo)"
    series = shared_server.client.metrics(job.id, names="train/loss,eval/accuracy")["series"]
    assert series["train/loss"]["step"] == list(range(1, 61)), stopped_at  # each step once across both attempts
    assert series["eval/accuracy"]["step"] == [60]
    assert (checkpoints[-1] / "adapter_model.safetensors").is_file()
    assert (Path(resumed.output_dir) / "adapter_model.safetensors").is_file()
    assert f"resuming from {checkpoints[-1]}" in log_text(shared_server, job.id)


def test_a_killed_rank_fails_the_job_with_that_ranks_error(
        shared_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    job, torchrun, ranks = two_ranks_at_step(shared_server, tiny_spec, max_steps=400, step=2)
    victim = next(p for p in ranks if p.environ().get("RANK") == "1")
    os.kill(victim.pid, signal.SIGKILL)
    failed = shared_server.wait_for(job.id, timeout=120)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error.type == "rank_failed", failed.error
    assert failed.error.message.startswith("rank 1 of 2 died (signal 9 (SIGKILL))"), failed.error.message
    assert gone([*ranks, torchrun])


def worker_pid(server: RunningServer, job_id: str) -> int:
    """torchrun's pid, from the worker file the executor writes."""
    info = json.loads((server.data_dir / "jobs" / job_id / "worker.json").read_text(encoding="utf-8"))
    return int(info["pid"])


def test_a_job_asking_for_more_than_the_machine_has_is_refused_naming_the_field(
        shared_server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["resources"] = {"gpus": 2}
    response = shared_server.client.http.post("/api/jobs", json=tiny_spec)
    assert response.status_code == 422
    assert "resources.gpus" in response.text and "this machine has 0" in response.text


def test_resource_problems_name_the_field_and_the_fix(tiny_spec: dict[str, Any]) -> None:
    from finetune_studio.scheduler import resource_problems
    from finetune_studio.spec import JobSpec

    ray = JobSpec.model_validate({**tiny_spec, "resources": {"executor": "ray"}})
    [problem] = resource_problems(ray, 0, ray_installed=False)
    assert problem.field == "resources.executor" and 'pip install "finetune-studio[ray]"' in problem.message
    assert resource_problems(ray, 0, ray_installed=True) == []
    cpu = JobSpec.model_validate({**tiny_spec, "resources": {"processes": 4}})
    assert resource_problems(cpu, 0, ray_installed=False) == []
    [problem] = resource_problems(cpu, 2, ray_installed=False)
    assert problem.field == "resources.processes" and "resources.gpus = 2" in problem.message
    with pytest.raises(ValueError, match="either gpus"):
        JobSpec.model_validate({**tiny_spec, "resources": {"processes": 2, "gpus": 2}})


def test_the_gpu_check_script_imports_and_explains_itself() -> None:
    """benchmarks/gpu_check.py runs only where a GPU is; here it must at least import and say what it does."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True)
    assert "out_of_memory" in shown.stdout and "--peak-tflops" in shown.stdout


def test_a_nan_loss_stops_every_rank_not_rank_0_alone() -> None:
    """Regression: only rank 0 checked the logged loss for NaN, so it stopped while the other ranks trained
    on into a collective that it never joined. The logged loss is gathered: every rank sees the NaN."""
    from transformers import TrainerControl, TrainerState

    from finetune_studio.reporter import StudioCallback
    from finetune_studio.worker import SilentClient

    state = TrainerState(global_step=7, is_world_process_zero=False)
    callback, control = StudioCallback(SilentClient(), stop_on_nan=True), TrainerControl()  # type: ignore[arg-type]
    callback.on_log(None, state, control, logs={"loss": float("nan"), "grad_norm": 1.0})
    assert control.should_training_stop and callback.nan_step == 7


def test_an_anomaly_in_another_ranks_batch_reaches_the_jobs_log(capsys: pytest.CaptureFixture[str]) -> None:
    """Rank 0 alone reports; an anomaly found in another rank's own batch (a loss spike there) goes to its
    stderr, which the job's log keeps prefixed by the rank, instead of vanishing with the silent client."""
    from finetune_studio.worker import SilentClient

    SilentClient().emit("anomaly", {"kind": "spike", "step": 12, "detail": "the loss jumped to 9.1 (z 14.2)",
                                    "rows": [3, 41], "saved_to": "/jobs/j1/anomalies/step-12-spike.pt"})
    SilentClient().emit("metric", {"step": 12, "values": {"train/loss": 9.1}})
    err = capsys.readouterr().err
    assert err.splitlines() == ["anomaly (spike) at step 12: the loss jumped to 9.1 (z 14.2); rows [3, 41]; "
                                "batch saved to /jobs/j1/anomalies/step-12-spike.pt"]
