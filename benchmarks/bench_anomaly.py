"""What the anomaly detectors cost (issue 15): the same tiny job trained in this process through the
worker's own `train_job`, with `[debug] break_on` empty and with every detector on, interleaved,
`--repeat` times after a discarded warm-up of each; samples/s is the Trainer's own figure (medians).
Nothing fires in these runs (a falling loss); the time from an anomalous step to the debugger's stop is
measured by tests/test_anomaly_debugger.py, which prints it.

    .venv/bin/python benchmarks/bench_anomaly.py [--steps 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from finetune_studio.testing.tiny_models import build_tiny_bert, write_classification_data  # noqa: E402

NAME = "anomaly"


def one_run(folder: Path, model: Path, train: Path, steps: int, detectors: list[str]) -> float:
    from finetune_studio.delivery import ReporterClient
    from finetune_studio.spec import JobSpec
    from finetune_studio.worker import GracefulStop, train_job

    spec = JobSpec.model_validate({
        "task": "text-classification", "model": str(model), "data": {"train": str(train), "max_length": 32},
        "training": {"max_steps": steps, "batch_size": 8, "learning_rate": 3e-3, "logging_steps": 10,
                     "eval_strategy": "no", "save_strategy": "no"}, "debug": {"break_on": detectors}})
    job_dir = Path(tempfile.mkdtemp(dir=folder))
    client = ReporterClient(None, None, None, 1, job_dir / "spool.jsonl")  # no server: spooled, as offline
    result = train_job(spec, job_dir, client, 1, GracefulStop())
    client.close()
    assert result["state"] == "completed", result
    summary = [json.loads(line) for line in (job_dir / "spool.jsonl").read_text().splitlines()]
    values = [e["data"]["values"] for batch in summary for e in batch["events"] if e["type"] == "metric"]
    rate = next(v["summary/train_samples_per_second"] for v in values if "summary/train_samples_per_second" in v)
    anomalies = [e for batch in summary for e in batch["events"] if e["type"] == "anomaly"]
    assert not anomalies, anomalies
    return float(rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = Path(tempfile.mkdtemp(prefix="bench-anomaly-"))
    model = build_tiny_bert(folder / "tiny-bert")
    train, _ = write_classification_data(folder, train=400)
    variants: dict[str, list[str]] = {"detectors off": [], "every detector on": ["nan", "spike", "grad_spike"]}
    for detectors in variants.values():  # warm-up, discarded
        one_run(folder, model, train, 20, detectors)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, detectors in variants.items():
            rates[name].append(one_run(folder, model, train, args.steps, detectors))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians["every detector on"] / medians["detectors off"]
    result: dict[str, Any] = {"steps": args.steps, "repeat": args.repeat, "samples_per_second": rates,
                              "median": medians, "ratio_on_over_off": ratio, "load_average": os.getloadavg()}
    (HERE / "results" / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"samples/s, median of {args.repeat}: off {medians['detectors off']:.1f}, "
          f"on {medians['every detector on']:.1f}; on/off = {result['ratio_on_over_off']:.3f} "
          f"(load average {result['load_average'][0]:.2f})")


if __name__ == "__main__":
    main()
