"""The GPU checks, in one command, for a machine with NVIDIA GPUs and no network (issue 13).

Uses the torch installed there and the real server (`python -m finetune_studio serve`), as users do:

1. the demo fine-tune (all-MiniLM-L6-v2 on review snippets) in bf16 on one GPU: samples/s, MFU (the
   Trainer's model FLOPs per second over the GPU's peak bf16 FLOPs), peak memory, eval accuracy;
2. the same in fp32 as a managed job and as the plain Trainer script (`plain_trainer_demo.py`, dynamic
   padding to 64 like the job): the managed / plain samples/s ratio;
3. with 2+ GPUs, the bf16 job as 2 DDP processes (torchrun, nccl; global batch 16 as in 1): samples/s,
   and each step reported once;
4. with bitsandbytes installed, QLoRA (4-bit base, LoRA r=8) in bf16;
5. a deliberate CUDA out-of-memory (batch 4096 of 512-token examples) that must end as a job error of type
   `out_of_memory` naming the batch size and max_length.

Each check prints PASS or FAIL; the figures go to `benchmarks/results/gpu_check.json`. Exit status 0 when
every check that could run passed.

    python benchmarks/gpu_check.py [--train-size 2400 --eval-size 600 --epochs 1] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from finetune_studio.client import StudioClient  # noqa: E402
from finetune_studio.demo import minilm_folder, write_demo  # noqa: E402
from finetune_studio.spec import load_spec  # noqa: E402

HERE = Path(__file__).resolve().parent
NAME = "gpu_check"
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; --peak-tflops for any other GPU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0,
                    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0,
                    "RTX 3090": 71.0}


def peak_tflops(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


class Checks:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}

    def record(self, name: str, passed: bool, **figures: Any) -> None:
        self.results[name] = {"passed": passed, **figures}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        print(f"{'PASS' if passed else 'FAIL'} {name}: {shown}", flush=True)


@contextmanager
def studio_server(data_dir: Path) -> Iterator[StudioClient]:
    """The real server on a free port, as users start it (no test tools needed on the GPU machine)."""
    data_dir.mkdir(parents=True)
    log = (data_dir.parent / "server.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir),
                                "--port", "0"], stdout=log, stderr=log)
    try:
        deadline = time.time() + 120
        while not (data_dir / "server.json").is_file():
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit("the server did not start:\n" + (data_dir.parent / "server.log").read_text())
            time.sleep(0.1)
        info = json.loads((data_dir / "server.json").read_text())
        client = StudioClient(info["url"], info["token"])
        try:
            yield client
        finally:
            client.close()
    finally:
        process.terminate()
        process.wait(timeout=120)
        log.close()


def run_job(api: StudioClient, spec: dict[str, Any], timeout: float) -> tuple[Any, dict[str, Any]]:
    """Submit, follow to the end; the job and its figures."""
    started = time.time()
    job = api.submit(spec)
    for _ in api.stream(job.id):
        if time.time() > started + timeout:
            api.cancel(job.id)
            raise TimeoutError(f"{spec['name']} did not finish within {timeout:.0f} s")
    final = api.job(job.id)
    names = ("summary/train_samples_per_second,summary/train_runtime,summary/total_flos,train/loss,"
             "eval/accuracy,system/gpu_max_memory_allocated_gb")
    series = api.metrics(final.id, names=names)["series"] if final.state == "completed" else {}

    def last(name: str) -> float | None:
        values = [v for v in series.get(name, {}).get("value", []) if v is not None]
        return values[-1] if values else None

    peak_memory = series.get("system/gpu_max_memory_allocated_gb", {}).get("value", [])
    return final, {
        "samples_per_second": last("summary/train_samples_per_second"), "runtime": last("summary/train_runtime"),
        "total_flos": last("summary/total_flos"), "eval_accuracy": last("eval/accuracy"),
        "peak_memory_gb": max((v for v in peak_memory if v is not None), default=None),
        "loss_steps": series.get("train/loss", {}).get("step", []), "wall_seconds": time.time() - started}


def mfu(figures: dict[str, Any], gpus: int, peak: float | None) -> float | None:
    if not (peak and figures["total_flos"] and figures["runtime"]):
        return None
    return float(figures["total_flos"] / figures["runtime"] / (peak * 1e12 * gpus))


def write_long_data(folder: Path, rows: int, words: int) -> Path:
    """Examples longer than any max_length: with a big batch, activations far beyond any GPU's memory."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "long.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for row in range(rows):
            writer.writerow([" ".join(["a long and wonderful film"] * (words // 5)), "positive" if row % 2 else
                             "negative"])
    return path


def plain_script(folder: Path, model: Path, epochs: float, timeout: float) -> float:
    result = folder / "plain.json"
    subprocess.run([sys.executable, str(HERE / "plain_trainer_demo.py"), "--data", str(folder / "data"),
                    "--model", str(model), "--output-dir", str(folder / "plain"), "--epochs", str(epochs),
                    "--padding", "dynamic", "--max-length", "64", "--result", str(result)],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    return float(json.loads(result.read_text())["train_samples_per_second"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--train-size", type=int, default=2400, help="demo train snippets (run_demo's size)")
    parser.add_argument("--eval-size", type=int, default=600)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for MFU (default: "
                        "from its name: " + ", ".join(PEAK_BF16_TFLOPS) + ")")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per job")
    parser.add_argument("--skip-oom", action="store_true", help="skip the deliberate out-of-memory")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here (torch.cuda.is_available() is False): run this on a machine with NVIDIA GPUs",
              file=sys.stderr)
        return 2
    count = torch.cuda.device_count()
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or peak_tflops(name)
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    print(f"{count} × {name}; torch {torch.__version__} (CUDA {torch.version.cuda}); bf16 "
          f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}; bitsandbytes {'yes' if has_bnb else 'no'}; "
          f"peak bf16 {peak or 'unknown (pass --peak-tflops)'} TFLOP/s", flush=True)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        base = load_spec(write_demo(folder, args.train_size, args.eval_size, args.epochs)).model_dump(mode="json")
        base["training"].update(eval_strategy="epoch", save_strategy="no", logging_steps=5)

        def spec(label: str, **changes: dict[str, Any]) -> dict[str, Any]:
            made: dict[str, Any] = json.loads(json.dumps(base))
            made["name"] = label
            for section, values in changes.items():
                made[section] = {**(made.get(section) or {}), **values}
            return made

        with studio_server(folder / "state") as api:
            job, bf16 = run_job(api, spec("bf16, 1 GPU", training={"precision": "bf16"}), args.timeout)
            checks.record("bf16 demo fine-tune on 1 GPU", job.state == "completed", state=job.state,
                          samples_per_second=bf16["samples_per_second"], mfu=mfu(bf16, 1, peak),
                          peak_memory_gb=bf16["peak_memory_gb"], eval_accuracy=bf16["eval_accuracy"],
                          device=job.device, error=job.error.message if job.error else None)

            job, fp32 = run_job(api, spec("fp32, 1 GPU", training={"precision": "fp32"}), args.timeout)
            plain = plain_script(folder, minilm_folder(), args.epochs, args.timeout)
            ratio = fp32["samples_per_second"] / plain if fp32["samples_per_second"] else None
            checks.record("managed / plain script, fp32, dynamic padding 64", job.state == "completed",
                          managed_samples_per_second=fp32["samples_per_second"], plain_samples_per_second=plain,
                          ratio=ratio, bf16_over_fp32=(bf16["samples_per_second"] or 0) / (fp32["samples_per_second"]
                                                                                          or 1))

            if count >= 2:
                job, ddp = run_job(api, spec("bf16, 2 GPUs", training={"precision": "bf16", "batch_size": 8},
                                             resources={"gpus": 2}), args.timeout)
                steps = ddp["loss_steps"]
                once = steps == sorted(set(steps))
                checks.record("2-GPU DDP (torchrun, nccl), bf16, global batch 16",
                              job.state == "completed" and once, state=job.state, device=job.device,
                              samples_per_second=ddp["samples_per_second"], mfu=mfu(ddp, 2, peak),
                              ratio_to_1_gpu=(ddp["samples_per_second"] or 0) / (bf16["samples_per_second"] or 1),
                              each_step_once=once, error=job.error.message if job.error else None)
            else:
                print("SKIP 2-GPU DDP: this machine has 1 GPU", flush=True)

            if has_bnb:
                job, qlora = run_job(api, spec("QLoRA", training={"precision": "bf16"},
                                               lora={"r": 8, "quantize": "4bit"}), args.timeout)
                checks.record("QLoRA (4-bit base, LoRA r=8), bf16", job.state == "completed", state=job.state,
                              samples_per_second=qlora["samples_per_second"], peak_memory_gb=qlora["peak_memory_gb"],
                              eval_accuracy=qlora["eval_accuracy"], error=job.error.message if job.error else None)
            else:
                print("SKIP QLoRA: bitsandbytes is not installed", flush=True)

            if not args.skip_oom:
                long = write_long_data(folder / "long", rows=8192, words=700)
                job, _ = run_job(api, spec("deliberate OOM", data={"train": str(long), "eval": str(long),
                                                                   "max_length": 512},
                                           training={"precision": "fp32", "batch_size": 4096, "max_steps": 2}),
                                 args.timeout)
                error = job.error
                text = f"{error.message} {error.hint}" if error else ""
                names_fields = "batch_size" in text and "max_length" in text
                checks.record("deliberate CUDA OOM ends as out_of_memory naming batch size and max_length",
                              job.state == "failed" and error is not None and error.type == "out_of_memory"
                              and names_fields, state=job.state, type=error.type if error else None,
                              names_values="4096" in text and "512" in text, message=text[:300])

    failed = [name for name, result in checks.results.items() if not result["passed"]]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]),
        "gpus": count, "gpu": name, "torch": torch.__version__, "peak_bf16_tflops": peak,
        "bitsandbytes": has_bnb, "checks": checks.results}, indent=2, default=str), encoding="utf-8")
    print(f"\n{len(checks.results) - len(failed)} of {len(checks.results)} checks passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
