"""The machine's devices: how many GPUs the scheduler may hand out, and what `/api/system` shows.

With no NVIDIA device node the answer is the CPU, found without importing torch (seconds saved at server
start). `FINETUNE_STUDIO_FORCE_CPU=1` hides every GPU (documented in the README).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .wire import Device


def gpu_count() -> int:
    if os.environ.get("FINETUNE_STUDIO_FORCE_CPU") == "1":
        return 0
    if sys.platform == "linux" and not any(Path("/dev").glob("nvidia[0-9]*")):
        return 0
    import torch

    return int(torch.cuda.device_count())  # NVML only: does not create a CUDA context here


def describe(gpus: list[int], busy: dict[int | str, str | None]) -> list[Device]:
    """Each device with the job that holds it (`busy` maps a slot, a GPU index or "cpu", to a job id)."""
    if not gpus:
        return [Device(index=None, kind="cpu", name=f"CPU ({os.cpu_count()} cores)", busy_job=busy.get("cpu"))]
    import torch

    devices = []
    for index in gpus:
        free, total = torch.cuda.mem_get_info(index) if torch.cuda.is_initialized() else (None, None)
        devices.append(Device(
            index=index, kind="cuda", name=torch.cuda.get_device_name(index),
            memory_total_mb=total / 2**20 if total else torch.cuda.get_device_properties(index).total_memory / 2**20,
            memory_used_mb=(total - free) / 2**20 if total and free else None,
            utilization=_utilization(index), busy_job=busy.get(index)))
    return devices


def _utilization(index: int) -> float | None:
    try:
        import torch

        return float(torch.cuda.utilization(index))
    except (ImportError, RuntimeError, ModuleNotFoundError):
        return None  # needs pynvml; absent is fine


Slot = int | str  # a GPU index, or "cpu"


class DeviceSlots:
    """Which job holds which device: one job per GPU; with no GPU, one job at a time on the CPU."""

    def __init__(self, gpus: list[int]) -> None:
        self.gpus = list(gpus)
        self._holders: dict[Slot, str | None] = {g: None for g in self.gpus} or {"cpu": None}

    def free_for(self, wanted: int | str) -> list[Slot] | None:
        """The slots a job asking for `wanted` GPUs ("all", or a count) would get now; None: it must wait."""
        free = [s for s, holder in self._holders.items() if holder is None]
        if not self.gpus:
            return free[:1] or None
        count = len(self.gpus) if wanted == "all" else max(1, int(wanted))
        return free[:count] if len(free) >= count else None

    def take(self, slots: list[Slot], job_id: str) -> None:
        for slot in slots:
            self._holders[slot] = job_id

    def release(self, job_id: str) -> None:
        for slot, holder in self._holders.items():
            if holder == job_id:
                self._holders[slot] = None

    def holders(self) -> dict[Slot, str | None]:
        return dict(self._holders)
