"""Device slots: one job per GPU, the rest queue. This machine has no GPU, so the scheduler is given
two pretend GPU indices (the only thing mocked); no process is started."""

from __future__ import annotations

import time
from pathlib import Path

from finetune_studio.broker import Broker
from finetune_studio.scheduler import Scheduler
from finetune_studio.store import Store
from finetune_studio.wire import Job


def _job(gpus: int | str) -> Job:
    return Job(id=f"j{gpus}", name="j", task="text-classification", kind="managed", state="queued", attempt=1,
               created_at=time.time(), output_dir="", spec={"resources": {"gpus": gpus}})


def test_jobs_get_gpus_of_their_own_and_wait_when_none_is_free(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    scheduler = Scheduler(store, Broker(), tmp_path, "http://127.0.0.1:1", "t" * 20)
    scheduler.gpus = [0, 1]  # pretend GPUs: CI has none
    scheduler._slots = {0: None, 1: None}
    assert scheduler._free_slots(_job(1)) == [0]
    scheduler._slots[0] = "first"
    assert scheduler._free_slots(_job(1)) == [1]
    assert scheduler._free_slots(_job("all")) is None  # needs both: waits
    assert scheduler._free_slots(_job(2)) is None
    scheduler._slots[1] = "second"
    assert scheduler._free_slots(_job(1)) is None  # queued behind the busy GPUs
    scheduler._free("first")
    assert scheduler._free_slots(_job(1)) == [0]
    store.close()


def test_without_a_gpu_one_job_runs_on_the_cpu(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    scheduler = Scheduler(store, Broker(), tmp_path, "http://127.0.0.1:1", "t" * 20)
    scheduler.gpus = []
    scheduler._slots = {"cpu": None}
    assert scheduler._free_slots(_job(1)) == ["cpu"]
    scheduler._slots["cpu"] = "busy"
    assert scheduler._free_slots(_job(1)) is None
    store.close()
