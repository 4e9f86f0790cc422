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

`--only hooks` measures the callback alone (issue 12: <= 0.05 ms per step without a log): the hooks the
Trainer calls per optimizer step are called directly with a real TrainingArguments/TrainerState, against
a real server, paced like the tiny model's steps (`--pace-ms` of small torch ops between steps: after a
sleep instead, cold caches made every hook several times slower than in a training loop), first without
a log (with the batch-index
recording a managed job does per step), then with `on_log` every step (the 4 usual values). Figures are
the training thread's CPU time (`time.thread_time`, which a loaded machine disturbs least) and wall time
per step inside the hooks (the batch recording's share apart), and the CPU time of the reporter's
sender thread per step; with
`--before REV` the same runs first with REV's backend (a `git worktree`, by PYTHONPATH), for a before/after
from one run.

    .venv/bin/python benchmarks/bench_reporter_overhead.py --only hooks [--before HEAD] [--iterations 400]
"""

from __future__ import annotations

import argparse
import inspect
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
    """The callback with each of its `on_*` hooks timed into `spent[0]` (on the instance only), those that
    open and end the run into `spent[1]` too."""
    def wrap(hook: Any, once: bool) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
                spent[1] += (time.perf_counter() - started) if once else 0.0
        return run

    for name in dir(callback):
        if name.startswith("on_"):
            setattr(callback, name, wrap(getattr(callback, name), name in ("on_train_begin", "on_train_end")))
    return callback


def train_once(variant: str, model_dir: Path, dataset: Any, folder: Path,
               steps: int) -> tuple[float, float, float, float]:
    """(samples/s, CPU ms of this process per sample, ms per step inside the callback, of which opening and
    ending the run) of one training run."""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
    from transformers.integrations.integration_utils import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    from finetune_studio import StudioCallback

    spent = [0.0, 0.0]
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
    return (samples_per_second, (time.process_time() - cpu) / (steps * 8) * 1000, spent[0] / steps * 1000,
            spent[1] / steps * 1000)


def hooks_phase(callback: Any, args: Any, state: Any, control: Any, recorder: Any, steps: int, pace: float,
                logs: dict[str, float] | None) -> dict[str, float]:
    """Microseconds per step inside the hooks: training thread CPU, wall, and other threads' CPU."""
    import torch

    rows, mask = torch.arange(8), torch.ones(8, 32, dtype=torch.long)
    thread = wall = recording = 0.0
    sender = time.pthread_getcpuclockid(callback.client._thread.ident)  # the reporter's background thread
    sent = time.clock_gettime(sender)
    weights = torch.ones(64, 64)
    for _ in range(steps):
        until = time.perf_counter() + pace
        while time.perf_counter() < until:  # the step's own work: small torch ops, as a training step runs
            weights = (weights @ weights).clamp_(0, 1)
        cpu, started = time.thread_time(), time.perf_counter()
        callback.on_step_begin(args, state, control)
        # What RecordingTrainer.training_step adds per micro-batch in a managed job (batches.py).
        if RECORDS_TENSORS:
            recorder.record(state.global_step + 1, rows.tolist(), mask, mask.shape[-1])
        else:  # the backend of --before may be the one that counted tokens at once
            recorder.record(state.global_step + 1, rows.tolist(), mask.sum(-1).tolist())
        recording += time.thread_time() - cpu
        callback.on_pre_optimizer_step(args, state, control)
        state.global_step += 1
        callback.on_step_end(args, state, control)
        if logs is not None:
            state.log_history.append({**logs, "step": state.global_step})
            callback.on_log(args, state, control, logs=dict(logs))
        wall += time.perf_counter() - started
        thread += time.thread_time() - cpu
    sent = time.clock_gettime(sender) - sent
    return {"thread_cpu_us": thread / steps * 1e6, "wall_us": wall / steps * 1e6,
            "recording_cpu_us": recording / steps * 1e6, "sender_cpu_us": sent / steps * 1e6}


RECORDS_TENSORS = False  # whether BatchRecorder.record takes the attention mask (set by hooks_only)


def hooks_only(iterations: int, pace_ms: float) -> dict[str, Any]:
    import logging

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from finetune_studio import StudioCallback
    from finetune_studio.batches import BatchRecorder

    global RECORDS_TENSORS
    RECORDS_TENSORS = "mask" in inspect.signature(BatchRecorder.record).parameters

    logging.getLogger("transformers").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp, studio_server(Path(tmp) / "state") as api:
        os.environ.update(FINETUNE_STUDIO_URL=api.url, FINETUNE_STUDIO_TOKEN=api.token)
        args = TrainingArguments(output_dir=str(Path(tmp) / "out"), per_device_train_batch_size=8, logging_steps=1,
                                 report_to="none", use_cpu=True)
        state, control = TrainerState(), TrainerControl()
        state.max_steps, state.epoch = 3 * iterations, 0.0
        callback = StudioCallback(name="bench-hooks")
        callback.on_train_begin(args, state, control)
        recorder = BatchRecorder(Path(tmp), 1)
        logs = {"loss": 0.6931, "grad_norm": 1.25, "learning_rate": 1e-3, "epoch": 0.01}
        pace = pace_ms / 1000
        hooks_phase(callback, args, state, control, recorder, iterations // 4, pace, logs)  # warm-up
        quiet = hooks_phase(callback, args, state, control, recorder, iterations, pace, None)
        logged = hooks_phase(callback, args, state, control, recorder, iterations, pace, logs)
        callback.on_train_end(args, state, control)
        recorder.close()
        [job] = [j for j in api.jobs() if j.kind == "attached"]
        points = api.metrics(job.id, names="train/loss")["total_points"].get("train/loss", 0)
    return {"without_log": quiet, "with_log": logged, "loss_points": points,
            "expected_points": iterations + iterations // 4, "state": job.state}


def before(rev: str, argv: list[str]) -> dict[str, Any]:
    """The hooks benchmark with REV's backend: a git worktree of REV, first on PYTHONPATH."""
    import subprocess

    repo = HERE.parent
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree / "backend")}
            out = subprocess.run([sys.executable, __file__, *argv, "--json-only"], env=env, check=True,
                                 capture_output=True, text=True).stdout
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def print_hooks(label: str, result: dict[str, Any]) -> None:
    for phase, name in (("without_log", "step without a log"), ("with_log", "step with on_log")):
        row = result[phase]
        print(f"| {label} | {name} | {row['thread_cpu_us']:.1f} | {row['recording_cpu_us']:.1f} | "
              f"{row['wall_us']:.1f} | {row['sender_cpu_us']:.1f} |")


def main_hooks(args: argparse.Namespace) -> None:
    argv = ["--only", "hooks", "--iterations", str(args.iterations), "--pace-ms", str(args.pace_ms)]
    old = before(args.before, argv) if args.before else None
    new = hooks_only(args.iterations, args.pace_ms)
    if args.json_only:
        print(json.dumps(new))
        return
    print(f"\nStudioCallback hooks, {args.iterations} steps per phase paced {args.pace_ms} ms apart, "
          f"load {os.getloadavg()}; loss points delivered: {new['loss_points']} of {new['expected_points']}"
          + (f" (before: {old['loss_points']})" if old else "") + "\n")
    print("| backend | per step | training thread CPU µs | of which batch recording | wall µs "
          "| sender thread CPU µs |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    if old:
        print_hooks(args.before, old)
    print_hooks("working tree", new)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}_hooks.json").write_text(json.dumps({
        "benchmark": f"{NAME}_hooks", "command": " ".join([".venv/bin/python", "benchmarks/bench_reporter_overhead.py",
                                                           *sys.argv[1:]]),
        "load_average": os.getloadavg(), "before": {"rev": args.before, **old} if old else None, "after": new},
        indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["hooks"], help="the callback's hooks alone (no training)")
    parser.add_argument("--iterations", type=int, default=400, help="--only hooks: steps per phase")
    parser.add_argument("--pace-ms", type=float, default=10.0, help="--only hooks: time between steps")
    parser.add_argument("--before", metavar="REV", help="--only hooks: run REV's backend first, for comparison")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only == "hooks":
        main_hooks(args)
        return

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
            fixed: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for round_ in range(args.repeat):
                for variant in VARIANTS:
                    speed, cpu_ms, hook_ms, fixed_ms = train_once(variant, model_dir, dataset,
                                                                  folder / f"run-{round_}", args.steps)
                    samples[variant].append(speed)
                    cpu[variant].append(cpu_ms)
                    hooks[variant].append(hook_ms)
                    fixed[variant].append(fixed_ms)
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
                "open_and_end_ms_per_step_median": statistics.median(fixed[v]),
                "step_ms_median": 8000 / statistics.median(samples[v])} for v in VARIANTS}
    print(f"\nReporter overhead: tiny BERT, {args.steps} steps of batch 8, logging_steps=1, "
          f"medians of {args.repeat} interleaved runs; attached runs: {len(runs)} {states}, "
          f"loss points delivered {delivered} of {args.steps} each\n")
    print("| variant | samples/s (median) | runs | ratio to no callback | CPU ms/sample (median) | CPU ratio "
          "| ms/step in the callback (median) | of which opening and ending the run |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.1f} | {', '.join(f'{s:.1f}' for s in row['samples_per_second'])} | "
              f"{row['ratio_to_no_callback']:.3f} | {row['cpu_median']:.2f} | {row['cpu_ratio_to_no_callback']:.3f} "
              f"| {row['callback_ms_per_step_median']:.3f} of {row['step_ms_median']:.1f} "
              f"| {row['open_and_end_ms_per_step_median']:.3f} |")
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
