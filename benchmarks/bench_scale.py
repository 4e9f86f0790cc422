"""One job on 1 process, on 2 DDP processes (torchrun, gloo) and on 2 Ray Train workers (issue 13).

The demo's fine-tune (all-MiniLM-L6-v2 on review snippets, `finetune_studio.demo.write_demo`) through the
real server, the same global batch each time: 1 process × 16, or 2 × 8. Samples/s is the Trainer's own
`train_samples_per_second` (global samples); time to first point is from the job's start (the worker or
driver launched) to the first stored `train/loss` point. The Ray run starts a local Ray for the job (no
`ray_address`), so its time includes Ray's start. On a 2-core machine two processes share the cores
that one process used alone: the ratio says what the engines cost, not what a second device gains.
One run each, one after the other: other work on the machine moves every figure.

    .venv/bin/python benchmarks/bench_scale.py [--train-size 320 --eval-size 80 --epochs 1] [--no-ray]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finetune_studio.demo import write_demo
from finetune_studio.spec import load_spec
from finetune_studio.testing import studio_server

HERE = Path(__file__).resolve().parent
NAME = "scale"


def run(folder: Path, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    with studio_server(folder) as api:
        started = time.time()
        job = api.submit(spec)
        for _ in api.stream(job.id):
            if time.time() > started + timeout:
                raise SystemExit(f"{spec['name']} did not finish within {timeout:.0f} s")
        wall = time.time() - started
        final = api.job(job.id)
        if final.state != "completed":
            raise SystemExit(f"{spec['name']} ended {final.state}: {final.error}")
        series = api.metrics(job.id, names="summary/train_samples_per_second,train/loss,eval/accuracy")["series"]
        assert final.started_at is not None
        return {"train_samples_per_second": series["summary/train_samples_per_second"]["value"][-1],
                "seconds_to_first_point": series["train/loss"]["time"][0] - final.started_at,
                "wall_seconds": wall, "steps": final.progress.step, "device": final.device,
                "eval_accuracy": series.get("eval/accuracy", {"value": [None]})["value"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--eval-size", type=int, default=80)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per run")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of every process (default: torch's for 1 "
                        "process; torchrun and Ray give each of theirs 1)")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server's workers inherit it

    rows: dict[str, dict[str, Any]] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        base = load_spec(write_demo(folder, args.train_size, args.eval_size, args.epochs)).model_dump(mode="json")
        base["training"].update(eval_strategy="epoch", save_strategy="no", logging_steps=1)
        runs = {"local, 1 process × batch 16": ({"processes": 1}, 16),
                "local, 2 DDP processes (gloo) × batch 8": ({"processes": 2}, 8)}
        if not args.no_ray:
            runs["ray, 2 Train workers (local Ray) × batch 8"] = ({"processes": 2, "executor": "ray"}, 8)
        for number, (name, (resources, batch)) in enumerate(runs.items()):
            spec = json.loads(json.dumps(base))
            spec["name"], spec["resources"] = name, resources
            spec["training"]["batch_size"] = batch
            rows[name] = run(folder / f"state-{number}", spec, args.timeout)
            load.append(os.getloadavg()[0])

    single = rows["local, 1 process × batch 16"]
    for figures in rows.values():
        figures["samples_per_second_ratio_to_1_process"] = (figures["train_samples_per_second"]
                                                            / single["train_samples_per_second"])
    print(f"\nScale-out on {os.cpu_count()} CPU cores: all-MiniLM-L6-v2, {args.train_size} train snippets, "
          f"{args.epochs:g} epoch, global batch 16; 1-min load average {load} (not quiet if above ~0.5)\n")
    print("| run | device | train samples/s | ratio to 1 process | s to first point | wall s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, f in rows.items():
        print(f"| {name} | {f['device']} | {f['train_samples_per_second']:.2f} | "
              f"{f['samples_per_second_ratio_to_1_process']:.2f} | {f['seconds_to_first_point']:.1f} | "
              f"{f['wall_seconds']:.0f} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_scale.py", *sys.argv[1:]]),
        "sizes": {"train": args.train_size, "eval": args.eval_size, "epochs": args.epochs},
        "cpus": os.cpu_count(), "threads": args.threads, "load_average_1min": load, "runs": rows}, indent=2),
        encoding="utf-8")


if __name__ == "__main__":
    main()
