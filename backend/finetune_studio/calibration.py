"""What a device does in practice: its matmul throughput and what a worker process costs before it holds
a model, measured once and kept in the state folder (`calibration.json`), for the estimate.

The measurement runs in a child process (`python -m finetune_studio.calibration DEVICE`): it imports
what a worker imports (so its resident memory is a worker's before the model), then times a few
seconds of matrix products. A child keeps the server free of a CUDA context (hundreds of MiB held on the
GPU for good) and measures with the environment a worker gets (OMP_NUM_THREADS...). The cache key
names the device and the thread setting: another GPU or another thread count is measured again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "calibration.json"
_lock = threading.Lock()  # two estimates at once measure once


@dataclass(frozen=True)
class Calibration:
    flops: float  # matmul FLOP/s in the dtype of training on that device (fp32 on a CPU)
    baseline_bytes: int  # a worker's resident memory after its imports (CPU), or the CUDA context (GPU)
    measured_at: float


def key(device: str) -> str:
    """`cpu` or `cuda:N`, with the thread setting the measurement depends on."""
    return f"{device} threads={os.environ.get('OMP_NUM_THREADS', os.cpu_count())}"


def cached(data_dir: Path, device: str) -> Calibration:
    """The device's calibration, measured now (a few seconds, once per device) when there is none."""
    path = data_dir / FILE
    with _lock:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if key(device) in known:
            return Calibration(**known[key(device)])
        result = measure_in_child(device)
        known[key(device)] = asdict(result)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(known, indent=2), encoding="utf-8")
        temporary.replace(path)
        return result


def measure_in_child(device: str) -> Calibration:
    done = subprocess.run([sys.executable, "-m", "finetune_studio.calibration", device], capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {device} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return Calibration(**json.loads(done.stdout.strip().splitlines()[-1]))


def measure(device: str) -> Calibration:
    """In the child: a worker's imports, then matrix products for about a second after a warm-up."""
    import psutil
    import torch
    import transformers  # noqa: F401  (a worker's imports, for its baseline memory)
    from transformers import Trainer  # noqa: F401

    from . import worker  # noqa: F401
    from .tasks import text_classification  # noqa: F401  (datasets, scikit-learn)

    baseline = psutil.Process().memory_info().rss
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info()
        baseline = total - free  # the context, and whatever else holds that GPU now
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        size = 8192
    else:
        dtype, size = torch.float32, 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    runs, elapsed = 0, 0.0
    for seconds in (0.2, 1.0):  # warm-up, then the measurement
        runs, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            (a @ b).sum().item()  # .item() waits for the GPU
            runs += 1
    return Calibration(flops=2 * size**3 * runs / elapsed, baseline_bytes=int(baseline), measured_at=time.time())


if __name__ == "__main__":
    print(json.dumps(asdict(measure(sys.argv[1]))))
