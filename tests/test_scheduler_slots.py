"""Device slots: one job per GPU, the rest queue. This machine has no GPU, so the slots are given two
pretend GPU indices (the only thing mocked); no process is started."""

from __future__ import annotations

from finetune_studio.devices import DeviceSlots


def test_jobs_get_gpus_of_their_own_and_wait_when_none_is_free() -> None:
    slots = DeviceSlots([0, 1])  # pretend GPUs: CI has none
    assert slots.free_for(1) == [0]
    slots.take([0], "first")
    assert slots.free_for(1) == [1]
    assert slots.free_for("all") is None  # needs both: waits
    assert slots.free_for(2) is None
    slots.take([1], "second")
    assert slots.free_for(1) is None  # queued behind the busy GPUs
    slots.release("first")
    assert slots.free_for(1) == [0]
    assert slots.holders() == {0: None, 1: "second"}


def test_without_a_gpu_one_job_runs_on_the_cpu() -> None:
    slots = DeviceSlots([])
    assert slots.free_for(1) == ["cpu"]
    slots.take(["cpu"], "busy")
    assert slots.free_for(1) is None
