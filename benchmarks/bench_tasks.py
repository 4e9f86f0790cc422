"""The tasks of issue 6 as managed jobs against plain Trainer scripts, and LoRA against full fine-tuning.

Part 1, per task (token classification, question answering, seq2seq, causal LM): the same tiny model
(built from a config by `testing/tiny_models.py`) and the same data, once as a managed job through the real
server and its worker, once as the plain script a user writes from the HF task guide
(`plain_trainer_tasks.py`), each in its own process with one CPU thread (tiny models gain nothing from more,
and it keeps the two sides from contending on a shared machine). Samples/s is the Trainer's own
`train_samples_per_second` (the whole `train()`, with an evaluation per epoch); wall is submit -> completed
against process start -> exit. The causal-LM job packs its examples (`packing = true`) so that both sides
train on the same blocks of max_length tokens, as the guide's `group_texts` does.

Part 2: LoRA (r 8, alpha 16, on query and value) against full fine-tuning of all-MiniLM-L6-v2 on the demo's
movie-review snippets (`finetune_studio.demo.write_demo`), both managed jobs: trainable parameters, the
worker's peak resident memory (VmHWM, read while it runs; on a GPU the reporter's
`system/gpu_max_memory_allocated_gb` is the figure to read), samples/s and the final eval accuracy.

    .venv/bin/python benchmarks/bench_tasks.py [--only tasks|lora] [--train-size 800 --eval-size 200]

Writes `benchmarks/results/tasks.json`. One run of each, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_demo_finetune import studio_server

from finetune_studio.client import StudioClient
from finetune_studio.demo import minilm_folder, write_demo
from finetune_studio.spec import load_spec
from finetune_studio.wire import FINISHED_STATES

HERE = Path(__file__).resolve().parent

from finetune_studio.testing import tiny_models  # noqa: E402

NAME = "tasks"
EPOCHS, BATCH = 2, 16


def task_setups(folder: Path) -> dict[str, dict[str, Any]]:
    """Per task: the tiny model, the data files, and the spec's data keys (the plain script gets the same)."""
    models = folder / "models"
    encoder = tiny_models.build_tiny_encoder(models / "encoder")
    t5 = tiny_models.build_tiny_t5(models / "t5")
    llama = tiny_models.build_tiny_llama(models / "llama")
    data = folder / "data"

    def files(name: str, train: list[Any], evaluation: list[Any]) -> tuple[Path, Path]:
        return (tiny_models.write_jsonl(data / name / "train.jsonl", train),
                tiny_models.write_jsonl(data / name / "dev.jsonl", evaluation))

    ner = files("ner", [{"tokens": t, "tags": g} for t, g in tiny_models.ner_sentences(480, seed=2)],
                [{"tokens": t, "tags": g} for t, g in tiny_models.ner_sentences(96, seed=3)])
    qa = files("qa", tiny_models.qa_rows(400, seed=2) + tiny_models.qa_rows(80, seed=4, filler=3),
               tiny_models.qa_rows(80, seed=3) + tiny_models.qa_rows(16, seed=5, filler=3))
    mt = files("mt", tiny_models.translation_rows(480, seed=2), tiny_models.translation_rows(96, seed=3))
    chat = files("chat", tiny_models.instruction_rows(480, seed=2), tiny_models.instruction_rows(96, seed=3))
    return {
        "token-classification": {"model": encoder, "files": ner, "learning_rate": 1e-2, "max_length": 32, "data": {}},
        "question-answering": {"model": encoder, "files": qa, "learning_rate": 1e-2, "max_length": 64,
                               "data": {"doc_stride": 16}},
        "seq2seq": {"model": t5, "files": mt, "learning_rate": 1e-2, "max_length": 24,
                    "data": {"source_prefix": "translate: "}},
        "causal-lm": {"model": llama, "files": chat, "learning_rate": 1e-2, "max_length": 48,
                      "data": {"prompt_column": "prompt", "response_column": "response", "packing": True}},
    }


def wait(api: StudioClient, job_id: str, timeout: float) -> Any:
    started = time.time()
    while (final := api.job(job_id)).state not in FINISHED_STATES:
        if time.time() > started + timeout:
            raise SystemExit(f"job {job_id} did not finish within {timeout:.0f} s")
        time.sleep(0.2)
    if final.state != "completed":
        raise SystemExit(f"job {job_id} ended {final.state}: {final.error}")
    return final


def managed(api: StudioClient, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    started = time.time()
    job = api.submit(spec)
    final = wait(api, job.id, timeout)
    wall = time.time() - started
    series = api.metrics(job.id)["series"]
    return {"job": job.id, "train_samples_per_second": series["summary/train_samples_per_second"]["value"][-1],
            "train_runtime": series["summary/train_runtime"]["value"][-1], "steps": final.progress.step,
            "wall_seconds": wall,
            "eval": {name: s["value"][-1] for name, s in series.items() if name.startswith("eval/")}}


def plain(task: str, setup: dict[str, Any], folder: Path, timeout: float) -> dict[str, Any]:
    result = folder / f"plain-{task}.json"
    train, evaluation = setup["files"]
    command = [sys.executable, str(HERE / "plain_trainer_tasks.py"), "--task", task, "--model", str(setup["model"]),
               "--train", str(train), "--eval", str(evaluation), "--output-dir", str(folder / f"plain-{task}"),
               "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--learning-rate", str(setup["learning_rate"]),
               "--max-length", str(setup["max_length"]),
               "--source-prefix", setup["data"].get("source_prefix", ""), "--result", str(result)]
    started = time.time()
    with (folder / f"plain-{task}.log").open("wb") as log:
        code = subprocess.run(command, timeout=timeout, stdout=log, stderr=log).returncode
    if code:
        raise SystemExit(f"the plain {task} script failed:\n{(folder / f'plain-{task}.log').read_text()[-3000:]}")
    figures: dict[str, Any] = json.loads(result.read_text())
    figures["wall_seconds"] = time.time() - started
    return figures


def compare_tasks(folder: Path, timeout: float) -> dict[str, Any]:
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the server, its workers and the plain scripts
    try:
        setups = task_setups(folder)
        rows: dict[str, Any] = {}
        with studio_server(folder / "state-tasks") as api:
            for task, setup in setups.items():
                train, evaluation = setup["files"]
                spec = {"name": f"bench-{task}", "task": task, "model": str(setup["model"]),
                        "data": {"train": str(train), "eval": str(evaluation), "max_length": setup["max_length"],
                                 **setup["data"]},
                        "training": {"epochs": EPOCHS, "batch_size": BATCH, "eval_batch_size": BATCH,
                                     "learning_rate": setup["learning_rate"], "logging_steps": 5,
                                     "eval_strategy": "epoch", "save_strategy": "no"}}
                rows[task] = {"managed": managed(api, spec, timeout), "plain": plain(task, setup, folder, timeout),
                              "load_average_1min": os.getloadavg()[0]}
                print(task, json.dumps(rows[task]), flush=True)
        return rows
    finally:
        del os.environ["OMP_NUM_THREADS"]


class PeakMemory(threading.Thread):
    """Polls a job's worker process for its peak resident set (VmHWM) until the job ends."""

    def __init__(self, database: Path, job_id: str) -> None:
        super().__init__(daemon=True)
        self.database, self.job_id = database, job_id
        self.peak_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        with sqlite3.connect(self.database) as conn:
            while not self.done.wait(0.25):
                row = conn.execute("SELECT pid FROM jobs WHERE id = ?", (self.job_id,)).fetchone()
                if not row or not row[0]:
                    continue
                try:
                    status = Path(f"/proc/{row[0]}/status").read_text()
                except OSError:
                    continue
                found = re.search(r"VmHWM:\s+(\d+) kB", status)
                if found:
                    self.peak_mb = max(self.peak_mb, int(found.group(1)) / 1024)


def compare_lora(folder: Path, train_size: int, eval_size: int, lora_lr: float, timeout: float) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    config = write_demo(folder / "demo", train_size, eval_size, 2.0)
    base = load_spec(config).model_dump(mode="json")
    base["training"].update(save_strategy="no", eval_strategy="epoch")
    total = sum(p.numel() for p in AutoModelForSequenceClassification.from_pretrained(
        minilm_folder(), num_labels=2).parameters())
    runs = {"full fine-tune (lr 1e-4, the demo's)": dict(base, name="full"),
            f"LoRA r 8, alpha 16, query+value (lr {lora_lr:g})": dict(
                base, name="lora", lora={"r": 8, "alpha": 16},
                training=dict(base["training"], learning_rate=lora_lr))}
    rows: dict[str, Any] = {}
    with studio_server(folder / "state-lora") as api:
        for label, spec in runs.items():
            started = time.time()
            job = api.submit(spec)
            memory = PeakMemory(folder / "state-lora" / "studio.db", job.id)
            memory.start()
            final = wait(api, job.id, timeout)
            memory.done.set()
            memory.join()
            series = api.metrics(job.id, names="summary/train_samples_per_second,eval/accuracy")["series"]
            log = "\n".join(line["text"] for line in api.request("GET", f"/api/jobs/{job.id}/logs",
                                                                 params={"limit": 10000})["lines"])
            counted = re.search(r"([\d,]+) of ([\d,]+) parameters train", log)
            rows[label] = {
                "trainable_parameters": int(counted.group(1).replace(",", "")) if counted else total,
                "total_parameters": total, "peak_rss_mb": memory.peak_mb,
                "train_samples_per_second": series["summary/train_samples_per_second"]["value"][-1],
                "eval_accuracy": series["eval/accuracy"]["value"][-1], "steps": final.progress.step,
                "wall_seconds": time.time() - started, "load_average_1min": os.getloadavg()[0]}
            print(label, json.dumps(rows[label]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["tasks", "lora"])
    parser.add_argument("--train-size", type=int, default=800, help="demo snippets for part 2 (run_demo: 2400)")
    parser.add_argument("--eval-size", type=int, default=200)
    # LoRA trains few weights from zero (B starts at 0): it takes a larger step than full fine-tuning
    parser.add_argument("--lora-learning-rate", type=float, default=2e-3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args()

    results: dict[str, Any] = {"benchmark": NAME, "command": " ".join(
        [".venv/bin/python", "benchmarks/bench_tasks.py", *sys.argv[1:]]), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as tmp:
        if args.only in (None, "tasks"):
            results["tasks"] = compare_tasks(Path(tmp), args.timeout)
        if args.only in (None, "lora"):
            results["lora"] = compare_lora(Path(tmp), args.train_size, args.eval_size, args.lora_learning_rate,
                                           args.timeout)

    if "tasks" in results:
        print(f"\nPer task: tiny models, {EPOCHS} epochs, batch {BATCH}, one evaluation per epoch, 1 CPU thread\n")
        print("| task | managed samples/s | plain samples/s | ratio | managed wall s | plain wall s | "
              "managed eval | plain eval |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for task, row in results["tasks"].items():
            m, p = row["managed"], row["plain"]
            managed_eval = ", ".join(f"{k.removeprefix('eval/')} {v:.3g}" for k, v in m["eval"].items())
            plain_eval = ", ".join(f"{k.removeprefix('eval_')} {v:.3g}" for k, v in p["eval"].items()
                                   if k in ("eval_loss", "eval_f1", "eval_bleu", "eval_perplexity"))
            print(f"| {task} | {m['train_samples_per_second']:.1f} | {p['train_samples_per_second']:.1f} | "
                  f"{m['train_samples_per_second'] / p['train_samples_per_second']:.2f} | {m['wall_seconds']:.1f} | "
                  f"{p['wall_seconds']:.1f} | {managed_eval} | {plain_eval} |")
    if "lora" in results:
        print(f"\nLoRA against full fine-tuning: all-MiniLM-L6-v2, {args.train_size} train / {args.eval_size} eval "
              "movie-review snippets, 2 epochs, batch 16, max_length 64\n")
        print("| run | trainable parameters | peak worker RSS MB | train samples/s | final eval accuracy |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, row in results["lora"].items():
            print(f"| {label} | {row['trainable_parameters']:,} of {row['total_parameters']:,} | "
                  f"{row['peak_rss_mb']:.0f} | {row['train_samples_per_second']:.1f} | {row['eval_accuracy']:.3f} |")
    out = HERE / "results" / f"{NAME}.json"
    out.parent.mkdir(exist_ok=True)
    if args.only and out.is_file():  # one part run again: keep the other part's figures
        results = {**json.loads(out.read_text(encoding="utf-8")), **results}
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
