"""Will it fit (issue 16): the estimate against real runs of the worker.

For several specs (model sizes, batch sizes, LoRA on/off, gradient checkpointing) the real worker
(`python -m finetune_studio.worker`, no server: the reporter spools) trains a few steps of a BERT built
from a config, on reviews long enough to fill data.max_length. It reports the estimated and the measured
peak memory (the worker's ru_maxrss on a CPU; on a GPU read the reporter's max_memory_allocated) and the
estimated and measured seconds per step (the Trainer's own train_runtime over its steps).

    .venv/bin/python benchmarks/bench_estimate.py

One CPU thread per worker (as in the tests), so that the runs do not contend on a shared machine.

Writes `benchmarks/results/estimate.json`. The goal is within ±25 %.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from finetune_studio import calibration  # noqa: E402
from finetune_studio.estimate import MIB, DeviceMemory, Throughput, estimate  # noqa: E402
from finetune_studio.spec import parse_spec  # noqa: E402
from finetune_studio.testing.memory import worker_peak_rss  # noqa: E402
from finetune_studio.testing.tiny_models import build_bert, long_reviews  # noqa: E402

CASES: list[dict[str, Any]] = [
    {"hidden": 256, "layers": 4, "batch_size": 16},
    {"hidden": 256, "layers": 4, "batch_size": 8},
    {"hidden": 256, "layers": 4, "batch_size": 16, "lora": True},
    {"hidden": 256, "layers": 4, "batch_size": 16, "gradient_checkpointing": True},
    {"hidden": 512, "layers": 4, "batch_size": 8},
]
STEPS = 4


def train_seconds_per_step(job_dir: Path) -> float | None:
    """From the spooled final metrics: the Trainer's train_runtime over the steps."""
    spool = job_dir / "spool.jsonl"
    for line in reversed(spool.read_text(encoding="utf-8").splitlines() if spool.is_file() else []):
        for event in json.loads(line).get("events", [json.loads(line)]):
            values = event.get("data", {}).get("values", {})
            runtime = next((v for k, v in values.items() if k.endswith("train_runtime")), None)
            if runtime:
                return float(runtime) / STEPS
    return None


def main() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # the calibration's too (worker_peak_rss sets the worker's)
    os.environ["HF_HUB_OFFLINE"] = "1"
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        data = long_reviews(folder / "long.csv", 64, 240)
        measured = calibration.cached(folder, "cpu")
        throughput = {"cpu": Throughput(measured.flops, measured.baseline_bytes)}
        for number, case in enumerate(CASES):
            model = build_bert(folder / f"bert-{case['hidden']}-{case['layers']}", case["hidden"], case["layers"])
            raw: dict[str, Any] = {
                "task": "text-classification", "model": str(model), "data": {"train": str(data), "max_length": 256},
                "training": {"batch_size": case["batch_size"], "max_steps": STEPS, "eval_strategy": "no",
                             "save_strategy": "no", "logging_steps": 1,
                             "gradient_checkpointing": case.get("gradient_checkpointing", False)}}
            if case.get("lora"):
                raw["lora"] = {"r": 8}
            spec = parse_spec(raw, folder)
            result = estimate(spec, [DeviceMemory("cpu", "cpu", None, 1 << 40)], throughput)
            state = folder / f"state-{number}"
            peak = worker_peak_rss(spec, state)
            job_dir = next((state / "jobs").iterdir())
            step_seconds = train_seconds_per_step(job_dir)
            estimated_step = (result.seconds_per_epoch or 0) / (result.steps_per_epoch or 1)
            row = {**case, "parameters": result.parameters, "estimated_mib": round(result.memory.total / MIB),
                   "measured_mib": round(peak / MIB), "memory_ratio": round(peak / result.memory.total, 2),
                   "estimated_s_per_step": round(estimated_step, 2),
                   "measured_s_per_step": round(step_seconds, 2) if step_seconds else None,
                   "time_ratio": round(step_seconds / estimated_step, 2) if step_seconds else None}
            print(row, flush=True)
            results.append(row)
    out = Path(__file__).parent / "results" / "estimate.json"
    summary = {"threads": 1, "calibration_flops": measured.flops,
               "baseline_mib": round(measured.baseline_bytes / MIB), "cases": results}
    out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
