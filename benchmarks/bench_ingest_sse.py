"""Ingest throughput and live delivery latency of the real server (issue 2).

Ingest at scale against plain SQLite, every point counted, is `bench_ingest.py` (issue 12).

1. Ingest: one client POSTs `/api/jobs/{id}/events` batches of 500 `metric` events, 4 values each (loss,
   learning rate, grad norm, epoch: what `on_log` reports), bodies serialised beforehand; points/s over
   all batches after one warm-up batch. Then every point is counted (per series through the API, raw rows
   in the database) and one batch is sent again (all duplicates, nothing stored). In the same run, plain
   SQLite: the same points as rows (series, step, value, time) inserted by `executemany` into a bare
   WITHOUT ROWID table, one transaction per batch, with the store's pragmas: the ceiling.
2. Latency: `StudioCallback.on_log` is called at a steady 10 and 100 logs/s (as a Trainer would, with a
   `ReporterClient` that batches every 0.2 s) while a subscriber reads `/api/jobs/{id}/stream`; latency =
   arrival of the metric event at the subscriber minus its `time`, which `ReporterClient.emit` stamps
   inside `on_log`. Same machine, so one clock.

    .venv/bin/python benchmarks/bench_ingest_sse.py [--batches 40] [--seconds 15] [--only ingest|latency]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from finetune_studio.client import StudioClient, parse_sse
from finetune_studio.delivery import FLUSH_SECONDS, ReporterClient
from finetune_studio.reporter import StudioCallback
from finetune_studio.testing import studio_server

HERE = Path(__file__).resolve().parent

NAME = "ingest_sse"
BATCH = 500
VALUES = 4
NAMES = ("train/loss", "train/learning_rate", "train/grad_norm", "train/epoch")


def open_run(api: StudioClient, name: str) -> str:
    job = api.request("POST", "/api/runs", json={"name": name, "task": "custom", "output_dir": "/tmp",
                                                           "training_args": {}, "pid": None})
    return str(job["id"])


def plain_executemany(folder: Path, batches: int) -> dict[str, Any]:
    """The same points into a bare table by executemany, one transaction per batch: SQLite's ceiling."""
    rows = [[(series, b * BATCH + i + 1, 1.0 / (b * BATCH + i + 1), time.time())
             for i in range(BATCH) for series in range(VALUES)] for b in range(batches + 1)]
    conn = sqlite3.connect(folder / "plain.db")
    conn.execute("PRAGMA journal_mode=WAL")  # the store's pragmas (store._connect)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE points (series INTEGER NOT NULL, step INTEGER NOT NULL, value REAL, "
                 "time REAL NOT NULL, PRIMARY KEY (series, step)) WITHOUT ROWID")
    with conn:
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows[0])  # warm-up
    started = time.perf_counter()
    for batch in rows[1:]:
        with conn:
            conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", batch)
    elapsed = time.perf_counter() - started
    stored = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    conn.close()
    assert stored == (batches + 1) * BATCH * VALUES, stored
    return {"seconds": elapsed, "points_per_second": batches * BATCH * VALUES / elapsed}


def count_points(database: Path, job_id: str) -> dict[str, int]:
    """Raw rows in the server's database, read-only: points per series and events of the job."""
    with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as conn:
        counts = dict(conn.execute("SELECT s.name, COUNT(*) FROM points p JOIN series s ON s.id = p.series "
                                   "WHERE s.job_id = ? GROUP BY s.name", (job_id,)).fetchall())
        counts["events"] = conn.execute("SELECT COUNT(*) FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]
    return counts


def ingest(api: StudioClient, batches: int, database: Path) -> dict[str, Any]:
    job_id = open_run(api, "ingest")
    bodies = []
    for b in range(batches + 1):
        events = [{"seq": b * BATCH + i + 1, "type": "metric", "time": time.time(),
                   "data": {"step": b * BATCH + i + 1, "values": {
                       "train/loss": 1.0 / (b * BATCH + i + 1), "train/learning_rate": 2e-5,
                       "train/grad_norm": 1.5, "train/epoch": (b * BATCH + i) / 1000}}} for i in range(BATCH)]
        bodies.append(json.dumps({"attempt": 1, "events": events}).encode())
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}",
                                                      "Content-Type": "application/json"}, trust_env=False, timeout=60)
    url = f"/api/jobs/{job_id}/events"
    http.post(url, content=bodies[0]).raise_for_status()  # warm-up
    per_batch = []
    started = time.perf_counter()
    for body in bodies[1:]:
        t = time.perf_counter()
        answer = http.post(url, content=body)
        answer.raise_for_status()
        per_batch.append(time.perf_counter() - t)
        assert answer.json()["accepted"] == BATCH, answer.text
    elapsed = time.perf_counter() - started
    again = http.post(url, content=bodies[len(bodies) // 2]).json()
    http.close()
    sent = (batches + 1) * BATCH
    total_points = api.metrics(job_id, names=",".join(NAMES), max_points=10)["total_points"]
    raw = count_points(database, job_id)
    exact = (again == {"accepted": 0, "duplicates": BATCH} and raw["events"] == sent
             and all(total_points[n] == raw[n] == sent for n in NAMES))
    return {"batches": batches, "events_per_batch": BATCH, "values_per_event": VALUES, "seconds": elapsed,
            "events_per_second": batches * BATCH / elapsed, "points_per_second": batches * BATCH * VALUES / elapsed,
            "batch_ms_median": statistics.median(per_batch) * 1000, "points_sent": sent * VALUES,
            "total_points": total_points, "raw_rows": raw, "resent_batch": again, "none_lost_or_duplicated": exact}


def latency(api: StudioClient, rate: float, seconds: float, folder: Path) -> dict[str, Any]:
    job_id = open_run(api, f"latency-{rate:g}")
    count = int(rate * seconds)
    arrivals: dict[int, float] = {}
    connected, done = threading.Event(), threading.Event()

    def subscribe() -> None:
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"},
                          trust_env=False, timeout=httpx.Timeout(30, read=None)) as http, \
                http.stream("GET", f"/api/jobs/{job_id}/stream") as response:
            connected.set()
            for event in parse_sse(response.iter_lines()):
                if event.type == "metric":
                    arrivals[event.data["step"]] = time.time() - event.time
                    if len(arrivals) == count:
                        done.set()
                        return

    threading.Thread(target=subscribe, daemon=True).start()
    connected.wait(30)
    client = ReporterClient(api.url, api.token, job_id, 1, folder / f"spool-{rate:g}.jsonl")
    callback = StudioCallback(client)
    args = SimpleNamespace(per_device_train_batch_size=16, gradient_accumulation_steps=1, world_size=1)
    state = SimpleNamespace(is_world_process_zero=True, global_step=0, max_steps=count, epoch=0.0)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_train_begin(args, state, control)
    start = time.perf_counter()
    for step in range(1, count + 1):
        time.sleep(max(0.0, start + step / rate - time.perf_counter()))
        state.global_step, state.epoch = step, step / count
        callback.on_log(args, state, control, logs={"loss": 1.0 / step, "grad_norm": 1.5,
                                                    "learning_rate": 2e-5, "epoch": state.epoch})
    client.close()
    done.wait(30)
    delays = sorted(d * 1000 for d in arrivals.values())
    return {"logs_per_second": rate, "logs": count, "received": len(delays),
            "p50_ms": statistics.median(delays), "p95_ms": delays[int(0.95 * (len(delays) - 1))],
            "max_ms": delays[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="timed ingest batches of 500 events")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each latency run")
    parser.add_argument("--only", choices=("ingest", "latency"), help="run one part")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    throughput: dict[str, Any] | None = None
    plain: dict[str, Any] | None = None
    latencies: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        with studio_server(Path(tmp) / "state") as api:
            if args.only != "latency":
                throughput = ingest(api, args.batches, Path(tmp) / "state" / "studio.db")
                plain = plain_executemany(Path(tmp), args.batches)
            if args.only != "ingest":
                import torch  # noqa: F401  (on_log imports it; keep that out of the first latency)
                latencies = [latency(api, rate, args.seconds, Path(tmp)) for rate in (10, 100)]

    if throughput is not None and plain is not None:
        print(f"\nIngest: {args.batches} batches of {BATCH} metric events x {VALUES} values, one client\n")
        print("| events/s | points/s | plain executemany points/s | ratio | median batch ms "
              "| every point stored once |")
        print("| ---: | ---: | ---: | ---: | ---: | --- |")
        ratio = throughput["points_per_second"] / plain["points_per_second"]
        print(f"| {throughput['events_per_second']:,.0f} | {throughput['points_per_second']:,.0f} | "
              f"{plain['points_per_second']:,.0f} | {ratio:.1%} | "
              f"{throughput['batch_ms_median']:.1f} | {'yes' if throughput['none_lost_or_duplicated'] else 'NO'} |")
    if latencies:
        print(f"\nSSE delivery latency, on_log -> subscriber (reporter flushes every {FLUSH_SECONDS} s)\n")
        print("| logs/s | logs | received | p50 ms | p95 ms | max ms |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in latencies:
            print(f"| {row['logs_per_second']:g} | {row['logs']} | {row['received']} | {row['p50_ms']:.0f} | "
                  f"{row['p95_ms']:.0f} | {row['max_ms']:.0f} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_ingest_sse.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_average_1min": [load_before, os.getloadavg()[0]],
        "flush_seconds": FLUSH_SECONDS, "ingest": throughput, "plain_executemany": plain, "latency": latencies},
        indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
