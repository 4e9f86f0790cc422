"""The same 1,000,000-point run in TensorBoard and in Fine-Tune Studio, read back by the same client (issue 12).

One `train/loss` curve (a noisy decay with one planted spike at 77 % of the run) is written twice:
through TensorBoard's `SummaryWriter` (torch.utils.tensorboard, one `add_scalar` per step) into an event
file, and through our reporter (`ReporterClient.emit("metric", ...)` per step, as `StudioCallback.on_log`
does) into an attached run on the real server. Then each server is started cold on what was written, as
users start it (`tensorboard --logdir D --port 0`, default flags; `python -m finetune_studio serve`), and
one httpx client polls until the server answers with the whole series (its last step present): TensorBoard's
`/data/plugin/scalars/scalars?run=run&tag=train/loss`, our `/api/jobs/{id}/metrics?names=train/loss&max_points=2000`.
Reported per server: write time, time from launch to the full answer, the warm query time (median of
`--calls`), points returned, whether the spike survived. TensorBoard keeps a random reservoir of 1,000
scalars per tag by default (`--samples_per_plugin` changes it).

    .venv/bin/python benchmarks/bench_vs_tensorboard.py [--points 1000000] [--calls 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from finetune_studio.delivery import MAX_BATCH, ReporterClient
from finetune_studio.testing import studio_server

HERE = Path(__file__).resolve().parent
NAME = "vs_tensorboard"
TAG = "train/loss"
SPIKE = 50.0


def curve(points: int) -> list[tuple[int, float]]:
    rng = random.Random(0)
    spike = int(points * 0.77)
    return [(step, SPIKE if step == spike else 2.0 * math.exp(-step / (points / 5)) + 0.1 + rng.random() * 0.05)
            for step in range(1, points + 1)]


def write_tensorboard(logdir: Path, points: list[tuple[int, float]]) -> float:
    from torch.utils.tensorboard import SummaryWriter

    started = time.perf_counter()
    writer = SummaryWriter(log_dir=str(logdir / "run"))
    for step, value in points:
        writer.add_scalar(TAG, value, step)
    writer.close()
    return time.perf_counter() - started


def write_studio(state: Path, folder: Path, points: list[tuple[int, float]]) -> tuple[str, float]:
    with studio_server(state) as api:
        job_id = str(api.request("POST", "/api/runs", json={"name": "one million points", "task": "custom",
                                                             "output_dir": str(folder), "training_args": {},
                                                             "pid": None})["id"])
        started = time.perf_counter()
        client = ReporterClient(api.url, api.token, job_id, 1, folder / "spool.jsonl")
        for step, value in points:
            client.emit("metric", {"step": step, "values": {TAG: value}})
            if step % MAX_BATCH == 0:
                # Faster than the server takes them, the pending events outgrow a batch (IngestBatch takes
                # at most 10,000): send them as they come, as the reporter's own thread would at its pace.
                client.flush()
        client.close()
        seconds = time.perf_counter() - started
        api.request("POST", f"/api/jobs/{job_id}/events", json={"attempt": 1, "events": [
            {"seq": len(points) + 1, "type": "end", "time": time.time(), "data": {"state": "completed"}}]})
    return job_id, seconds


def poll(get: Callable[[], httpx.Response], last_step: int, started: float, timeout: float = 600) -> dict[str, Any]:
    """Ask until the answer holds the series up to its last step; seconds counted from `started`."""
    while time.perf_counter() - started < timeout:
        try:
            answer = get()
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code == 200:
            steps, values = parse(answer)
            if steps and steps[-1] == last_step:
                return {"seconds_to_full_answer": time.perf_counter() - started, "points_returned": len(steps),
                        "spike_kept": SPIKE in values, "bytes": len(answer.content)}
        time.sleep(0.05)
    raise AssertionError(f"no full answer within {timeout} s")


def parse(answer: httpx.Response) -> tuple[list[int], list[float | None]]:
    body = answer.json()
    if isinstance(body, list):  # TensorBoard: [[wall_time, step, value], ...]
        return [row[1] for row in body], [row[2] for row in body]
    series = body["series"].get(TAG, {"step": [], "value": []})
    return series["step"], series["value"]


def warm(get: Callable[[], httpx.Response], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        get().raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def read_tensorboard(logdir: Path, last_step: int, calls: int) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        assert process.stdout is not None
        for line in process.stdout:  # "TensorBoard 2.x at http://localhost:PORT/ (Press CTRL+C to quit)"
            if found := re.search(r"at (http://\S+?)/? \(Press", line):
                url = found.group(1)
                break
        assert url, "TensorBoard did not say where it listens"
        with httpx.Client(base_url=url, trust_env=False, timeout=60) as http:
            def get() -> httpx.Response:
                return http.get("/data/plugin/scalars/scalars", params={"run": "run", "tag": TAG})
            result = poll(get, last_step, started)
            result["warm_query_ms"] = warm(get, calls)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return result


def read_studio(state: Path, job_id: str, last_step: int, calls: int) -> dict[str, Any]:
    started = time.perf_counter()
    with studio_server(state) as api, httpx.Client(base_url=api.url, trust_env=False, timeout=60,
                                                   headers={"Authorization": f"Bearer {api.token}"}) as http:
        def get() -> httpx.Response:
            return http.get(f"/api/jobs/{job_id}/metrics", params={"names": TAG, "max_points": 2000})
        result = poll(get, last_step, started)
        result["warm_query_ms"] = warm(get, calls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    points = curve(args.points)
    with tempfile.TemporaryDirectory(prefix="bench-vs-tb-") as tmp:
        folder = Path(tmp)
        tb_write = write_tensorboard(folder / "tb", points)
        job_id, studio_write = write_studio(folder / "state", folder, points)
        tensorboard = {"write_seconds": tb_write, **read_tensorboard(folder / "tb", args.points, args.calls)}
        studio = {"write_seconds": studio_write, **read_studio(folder / "state", job_id, args.points, args.calls)}

    print(f"\n{args.points:,} points of {TAG} with one spike, each server started cold on what was written\n")
    print("| | write s | launch -> whole series answered, s | warm query ms | points returned | spike kept |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, row in (("TensorBoard (SummaryWriter, default flags)", tensorboard),
                      ("Fine-Tune Studio (reporter, max_points=2000)", studio)):
        print(f"| {name} | {row['write_seconds']:.1f} | {row['seconds_to_full_answer']:.2f} | "
              f"{row['warm_query_ms']:.1f} | {row['points_returned']:,} | {'yes' if row['spike_kept'] else 'no'} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_vs_tensorboard.py",
                                               *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_average_1min": [load_before, os.getloadavg()[0]], "points": args.points,
        "tensorboard": tensorboard, "studio": studio}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
