"""What the reporter costs a training loop (issue 2): the same tiny job in this process with a plain
`Trainer`, without a callback, with `StudioCallback()` reporting to a real server (an attached run),
and with transformers' `TensorBoardCallback` for comparison.

The job: the tests' 2-layer BERT (testing/tiny_models.py), 200 steps of batch 8, logging_steps=1, so that
every step goes through `on_log`. No evaluation, no checkpoints; the console printer is removed in all
three so that only the callback under test differs. Samples/s is the Trainer's `train_samples_per_second`;
CPU ms/sample is this process's CPU time (all threads, the reporter's sender too) over `train()`, which a
busy machine disturbs less than wall time (the server's own CPU is not in it); ms/step in the callback is
the time the training thread spends inside the callback's hooks (opening the run and the final flush
included), the part of the cost that does not drown in run-to-run noise;
the three variants run interleaved, `--repeat` times, after a discarded warm-up run of each, and the
table shows medians.

    .venv/bin/python benchmarks/bench_reporter_overhead.py [--steps 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finetune_studio.testing import studio_server

HERE = Path(__file__).resolve().parent

from finetune_studio.testing.tiny_models import build_tiny_bert, write_classification_data  # noqa: E402

NAME = "reporter_overhead"
VARIANTS = ("no callback", "StudioCallback (attached run)", "TensorBoardCallback")


def timed(callback: Any, spent: list[float]) -> Any:
    """The callback with each of its `on_*` hooks timed into `spent[0]` (on the instance only)."""
    def wrap(hook: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
        return run

    for name in dir(callback):
        if name.startswith("on_"):
            setattr(callback, name, wrap(getattr(callback, name)))
    return callback


def train_once(variant: str, model_dir: Path, dataset: Any, folder: Path, steps: int) -> tuple[float, float, float]:
    """(samples/s, CPU ms of this process per sample, ms per step inside the callback) of one training run."""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
    from transformers.integrations.integration_utils import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    from finetune_studio import StudioCallback

    spent = [0.0]
    options: dict[str, list[Any]] = {"no callback": [], "StudioCallback (attached run)": [StudioCallback(name="bench")],
                                     "TensorBoardCallback": [TensorBoardCallback()]}
    callbacks = [timed(callback, spent) for callback in options[variant]]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    args = TrainingArguments(output_dir=str(folder), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=1e-3, logging_steps=1, eval_strategy="no", save_strategy="no",
                             report_to="none", disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    cpu = time.process_time()
    samples_per_second: float = trainer.train().metrics["train_samples_per_second"]
    return samples_per_second, (time.process_time() - cpu) / (steps * 8) * 1000, spent[0] / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import logging

    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-reporter-") as tmp:
        folder = Path(tmp)
        model_dir = build_tiny_bert(folder / "tiny-bert")
        train_csv, _ = write_classification_data(folder / "data")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        table = datasets.load_dataset("csv", data_files=str(train_csv))["train"]
        dataset = table.map(lambda b: {**tokenizer(b["text"], truncation=True, max_length=32),
                                       "labels": [int(label == "positive") for label in b["label"]]},
                            batched=True, remove_columns=table.column_names)
        with studio_server(folder / "state") as api:
            os.environ.update(FINETUNE_STUDIO_URL=api.url, FINETUNE_STUDIO_TOKEN=api.token)
            for variant in VARIANTS:  # imports and first-use costs stay out of the figures
                train_once(variant, model_dir, dataset, folder / "warm-up", args.steps)
            samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
            cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
            hooks: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for round_ in range(args.repeat):
                for variant in VARIANTS:
                    speed, cpu_ms, hook_ms = train_once(variant, model_dir, dataset, folder / f"run-{round_}",
                                                        args.steps)
                    samples[variant].append(speed)
                    cpu[variant].append(cpu_ms)
                    hooks[variant].append(hook_ms)
            # Every attached run must hold all its loss points: the reporter is not allowed to drop any.
            runs = [j for j in api.jobs() if j.kind == "attached"][:args.repeat]
            delivered = [api.metrics(j.id, names="train/loss")["total_points"].get("train/loss", 0) for j in runs]
            states = sorted({j.state for j in runs})

    base, base_cpu = statistics.median(samples["no callback"]), statistics.median(cpu["no callback"])
    rows: dict[str, dict[str, Any]] = {v: {"samples_per_second": samples[v], "median": statistics.median(samples[v]),
                "ratio_to_no_callback": statistics.median(samples[v]) / base,
                "cpu_ms_per_sample": cpu[v], "cpu_median": statistics.median(cpu[v]),
                "cpu_ratio_to_no_callback": statistics.median(cpu[v]) / base_cpu,
                "callback_ms_per_step": hooks[v], "callback_ms_per_step_median": statistics.median(hooks[v]),
                "step_ms_median": 8000 / statistics.median(samples[v])} for v in VARIANTS}
    print(f"\nReporter overhead: tiny BERT, {args.steps} steps of batch 8, logging_steps=1, "
          f"medians of {args.repeat} interleaved runs; attached runs: {len(runs)} {states}, "
          f"loss points delivered {delivered} of {args.steps} each\n")
    print("| variant | samples/s (median) | runs | ratio to no callback | CPU ms/sample (median) | CPU ratio "
          "| ms/step in the callback (median) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.1f} | {', '.join(f'{s:.1f}' for s in row['samples_per_second'])} | "
              f"{row['ratio_to_no_callback']:.3f} | {row['cpu_median']:.2f} | {row['cpu_ratio_to_no_callback']:.3f} "
              f"| {row['callback_ms_per_step_median']:.3f} of {row['step_ms_median']:.1f} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_reporter_overhead.py",
                                               *sys.argv[1:]]),
        "steps": args.steps, "repeat": args.repeat, "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
        "attached_runs": {"count": len(runs), "states": states, "loss_points": delivered},
        "variants": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
