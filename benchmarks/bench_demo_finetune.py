"""The demo's fine-tune as a managed job against the same fine-tune as a plain script (issue 2).

Managed: `finetune_studio.demo.write_demo` writes the data and `finetune.toml` (`run_demo`'s
hyper-parameters; a third of its data by default), the job goes through the real server (`python -m
finetune_studio serve`) and its worker process; dynamic padding, max_length 64 as the demo's TOML says. Plain:
`plain_trainer_demo.py`, the way HF's text-classification example does it by default (Trainer +
TrainingArguments, report_to="none", every example padded to max_length=128), in its own process.
A third row, the plain script with dynamic padding to 64, separates what padding saves from what Studio
costs. Samples/s is the Trainer's own `train_samples_per_second` (the whole `train()`, evaluations and
checkpoints included); wall is submit -> completed against process start -> exit; CPU s is all the CPU
time spent, start to end (managed: the server and its worker, with the job followed over SSE as
`finetune-studio run` does; plain: the script). One run of each, one after the other, on the same
machine: run it when nothing else does, as other work on 2 cores moves every figure by several times.

    .venv/bin/python benchmarks/bench_demo_finetune.py [--train-size 800 --eval-size 200 --epochs 2]

run_demo's full size is `--train-size 2400 --eval-size 600` (about 3x longer).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finetune_studio.demo import majority_share, minilm_folder, write_demo
from finetune_studio.spec import load_spec
from finetune_studio.testing import studio_server
from finetune_studio.wire import ServerInfo

HERE = Path(__file__).resolve().parent
NAME = "demo_finetune"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process itself, and of its children that it has waited for (the server's workers)."""
    utime, stime, cutime, cstime = (int(v) for v in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
                                    .split()[11:15])
    return (utime + stime) / os.sysconf("SC_CLK_TCK"), (cutime + cstime) / os.sysconf("SC_CLK_TCK")


def managed(folder: Path, config: Path, timeout: float) -> dict[str, Any]:
    with studio_server(folder / "state") as api:
        server_pid = ServerInfo.model_validate_json((folder / "state" / "server.json").read_text()).pid
        server_cpu, worker_cpu = cpu_seconds(server_pid)
        started = time.time()
        job = api.submit(load_spec(config).model_dump(mode="json"))
        for _ in api.stream(job.id):  # followed live, as `finetune-studio run` does; ends with the job
            if time.time() > started + timeout:
                raise SystemExit(f"the managed job did not finish within {timeout:.0f} s")
        wall = time.time() - started
        final = api.job(job.id)
        server_after, worker_after = cpu_seconds(server_pid)  # the worker is reaped before its job ends
        server_cpu, worker_cpu = server_after - server_cpu, worker_after - worker_cpu
        if final.state != "completed":
            raise SystemExit(f"the managed job ended {final.state}: {final.error}")
        series = api.metrics(job.id, names="summary/train_samples_per_second,summary/train_runtime,"
                             "eval/accuracy")["series"]
        accuracy = series.get("eval/accuracy", {"value": [None], "step": [None]})  # none below 50 steps
        return {"train_samples_per_second": series["summary/train_samples_per_second"]["value"][-1],
                "train_runtime": series["summary/train_runtime"]["value"][-1], "steps": final.progress.step,
                "eval_accuracy": accuracy["value"][-1], "eval_step": accuracy["step"][-1], "wall_seconds": wall,
                "cpu_seconds": server_cpu + worker_cpu, "server_cpu_seconds": server_cpu,
                "worker_cpu_seconds": worker_cpu}


def plain(folder: Path, epochs: float, padding: str, max_length: int, timeout: float) -> dict[str, Any]:
    out = folder / f"plain-{padding}"
    result = folder / f"plain-{padding}.json"
    started, cpu = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, str(HERE / "plain_trainer_demo.py"), "--data", str(folder / "data"),
                    "--model", str(minilm_folder()), "--output-dir", str(out), "--epochs", str(epochs),
                    "--padding", padding, "--max-length", str(max_length), "--result", str(result)],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    figures: dict[str, Any] = json.loads(result.read_text())
    figures["wall_seconds"] = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["cpu_seconds"] = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # A third of run_demo's data by default, so that the three runs fit the suite's time on 2 CPU cores.
    parser.add_argument("--train-size", type=int, default=800, help="run_demo: 2400 (--quick: 240)")
    parser.add_argument("--eval-size", type=int, default=200, help="run_demo: 600 (--quick: 120)")
    parser.add_argument("--epochs", type=float, default=2.0, help="run_demo: 2 (--quick: 1)")
    parser.add_argument("--no-dynamic", action="store_true", help="skip the plain script with dynamic padding")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        folder = Path(tmp)
        config = write_demo(folder, args.train_size, args.eval_size, args.epochs)
        load = [os.getloadavg()[0]]
        rows: dict[str, dict[str, Any]] = {}
        rows["Studio managed job (dynamic padding, max_length 64)"] = managed(folder, config, args.timeout)
        load.append(os.getloadavg()[0])
        rows["plain Trainer script (padding to max_length 128)"] = plain(folder, args.epochs, "max_length", 128,
                                                                          args.timeout)
        load.append(os.getloadavg()[0])
        if not args.no_dynamic:
            rows["plain Trainer script (dynamic padding, max_length 64)"] = plain(
                folder, args.epochs, "dynamic", 64, args.timeout)
            load.append(os.getloadavg()[0])
        label, baseline = majority_share(folder / "data" / "dev.csv")

    reference = rows["plain Trainer script (padding to max_length 128)"]
    for figures in rows.values():
        figures["samples_per_second_ratio_to_plain_128"] = (figures["train_samples_per_second"]
                                                            / reference["train_samples_per_second"])
        figures["wall_ratio_to_plain_128"] = figures["wall_seconds"] / reference["wall_seconds"]
        figures["cpu_ratio_to_plain_128"] = figures["cpu_seconds"] / reference["cpu_seconds"]
    print(f"\nDemo fine-tune: all-MiniLM-L6-v2, {args.train_size} train / {args.eval_size} eval snippets, "
          f"{args.epochs:g} epochs, batch 16, eval and checkpoint every 50 steps; "
          f"majority-class baseline {baseline:.3f} ({label!r}); 1-min load average {load}\n")
    print("| run | train samples/s | ratio to plain 128 | wall s | wall ratio | CPU s | CPU ratio | "
          "final eval accuracy (step) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, f in rows.items():
        print(f"| {name} | {f['train_samples_per_second']:.2f} | {f['samples_per_second_ratio_to_plain_128']:.2f} "
              f"| {f['wall_seconds']:.0f} | {f['wall_ratio_to_plain_128']:.2f} | {f['cpu_seconds']:.0f} | "
              f"{f['cpu_ratio_to_plain_128']:.2f} | {f['eval_accuracy'] or float('nan'):.3f} ({f['eval_step']}) |")
    studio = rows["Studio managed job (dynamic padding, max_length 64)"]
    print(f"\nStudio's CPU s: worker {studio['worker_cpu_seconds']:.0f}, server {studio['server_cpu_seconds']:.0f}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_demo_finetune.py",
                                               *sys.argv[1:]]),
        "sizes": {"train": args.train_size, "eval": args.eval_size, "epochs": args.epochs},
        "cpus": os.cpu_count(), "load_average_1min": load, "majority_baseline": baseline,
        "runs": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
