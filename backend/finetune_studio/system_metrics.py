"""Each training process's use of the machine, as `system/rank{R}/...` series (docs/api.md, "System
series"): its CPU % and resident memory (psutil), and on a GPU its device's utilisation, memory used and
total, and power draw (NVML, through `torch.cuda`; utilisation and power need `pynvml`, which the
nvidia-ml-py package provides: without it only the memory is read).

Cadence: about every SAMPLE_SECONDS of wall time, at an optimizer step's end. Rank 0 turns the time into
steps: at each sample it measures the steps per second since the last one and names the step of the
next sample. Under DDP every rank samples at the same steps and the samples meet on rank 0 through one
`all_gather_object` (gloo or nccl; on Ray too, where the other ranks may be on other machines); the next
step rides in rank 0's sample, so every rank learns it from that same collective and they stay agreed
without a collective per step. A step without a sample costs one comparison.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import psutil

SAMPLE_SECONDS = 5.0
MB = 2**20


def gpu_usage(cuda: Any, nvml: bool) -> dict[str, float]:
    """The current CUDA device of this process, as seen by the driver: memory used by every process on
    it (total minus free, as nvidia-smi shows it) and its total; with NVML, utilisation and power."""
    device = cuda.current_device()
    free, total = cuda.mem_get_info(device)
    values = {"gpu_memory_used_mb": (total - free) / MB, "gpu_memory_total_mb": total / MB}
    if nvml:
        values["gpu_utilization_percent"] = float(cuda.utilization(device))
        values["gpu_power_w"] = cuda.power_draw(device) / 1000  # NVML gives milliwatts
    return values


class SystemSampler:
    """Samples this process (and its GPU) at the steps the ranks agree on; `take` gathers the ranks'
    samples to rank 0 when `gather` (every rank must then call it at the same steps: `due`)."""

    def __init__(self, start_step: int, gather: bool) -> None:
        import torch

        self.gather = gather
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first reading counts from here
        self.cuda: Any = torch.cuda if torch.cuda.is_available() else None
        self.nvml = self.cuda is not None and importlib.util.find_spec("pynvml") is not None
        self.next_step = start_step + 1  # the first step's end: the charts get a point early
        self._last = (time.monotonic(), start_step)

    def due(self, step: int) -> bool:
        return step >= self.next_step

    def read(self) -> dict[str, float]:
        """This process now: CPU % since the last reading (100 = one core busy), resident memory in MiB."""
        with self.process.oneshot():
            values = {"cpu_percent": self.process.cpu_percent(None),
                      "rss_mb": self.process.memory_info().rss / MB}
        if self.cuda is not None:
            values.update(gpu_usage(self.cuda, self.nvml))
        return values

    def take(self, step: int, rank: int) -> dict[str, float]:
        """The `system/rank{R}/...` values of every rank (on rank 0; the others get theirs too, unused),
        and the step of the next sample, agreed by all ranks."""
        now = time.monotonic()
        then, last_step = self._last
        steps_per_second = (step - last_step) / (now - then) if now > then else 0.0
        self._last = (now, step)
        own: dict[str, Any] = {"rank": rank, "values": self.read(),
                               "next": step + max(1, round(SAMPLE_SECONDS * steps_per_second))}
        samples = [own]
        if self.gather:
            import torch.distributed as dist

            samples = [{} for _ in range(dist.get_world_size())]
            dist.all_gather_object(samples, own)
        self.next_step = samples[0]["next"]  # rank 0's word: the same on every rank
        return {f"system/rank{s['rank']}/{name}": value for s in samples for name, value in s["values"].items()}
