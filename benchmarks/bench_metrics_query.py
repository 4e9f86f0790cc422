"""`GET /api/jobs/{id}/metrics?max_points=2000` on a series of 1,000,000 points (issue 2).

An attached run is opened on the real server; its points are written straight into the store's SQLite
file (the `metrics` table, in the server's schema; the ingest path has its own benchmark) in stages of
10k, 100k and 1M points, one series `train/loss` with one spike. At each stage the endpoint is called
`--calls` times with `names=train/loss` and without `names` (as the dashboard first asks: every series of
the job); the table shows the median time, the response size and whether the spike survived.

    .venv/bin/python benchmarks/bench_metrics_query.py [--points 1000000] [--calls 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from server_process import studio_server

from finetune_studio.client import StudioClient

HERE = Path(__file__).resolve().parent
NAME = "metrics_query"
SPIKE_VALUE = 50.0


def add_points(database: Path, job_id: str, first: int, last: int, spike: int) -> None:
    """Steps first..last of `train/loss`: a noisy decaying curve, with one spike."""
    rng = random.Random(first)
    now = time.time()
    rows = ((job_id, "train/loss", step, SPIKE_VALUE if step == spike else
             2.0 * math.exp(-step / 200_000) + 0.1 + rng.random() * 0.05, now + step * 0.01)
            for step in range(first, last + 1))
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn, conn:
        conn.executemany("INSERT INTO metrics (job_id, name, step, value, time) VALUES (?, ?, ?, ?, ?)", rows)


def query(api: StudioClient, job_id: str, calls: int, names: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"max_points": 2000, **({"names": names} if names else {})}
    times, answer = [], None
    for _ in range(calls):
        started = time.perf_counter()
        answer = api.http.get(f"/api/jobs/{job_id}/metrics", params=params)
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    assert answer is not None
    series = answer.json()["series"]["train/loss"]
    return {"median_ms": statistics.median(times) * 1000, "times_ms": [t * 1000 for t in times],
            "bytes": len(answer.content), "points_returned": len(series["step"]),
            "spike_kept": SPIKE_VALUE in series["value"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    stages = [n for n in (10_000, 100_000) if n < args.points] + [args.points]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp, \
            studio_server(Path(tmp) / "state") as api:
        job_id = api.request("POST", "/api/runs", json={"name": "one million points", "task": "custom",
                                                        "output_dir": tmp, "training_args": {}, "pid": None})["id"]
        done = 0
        for stage in stages:
            started = time.perf_counter()
            add_points(Path(tmp) / "state" / "studio.db", job_id, done + 1, stage, spike=int(stage * 0.77))
            insert_seconds = time.perf_counter() - started
            done = stage
            rows.append({"points": stage, "insert_seconds": insert_seconds,
                         "one_series": query(api, job_id, args.calls, "train/loss"),
                         "all_series": query(api, job_id, args.calls, None)})

    print(f"\nGET /api/jobs/{{id}}/metrics?max_points=2000, one series (train/loss), median of {args.calls} calls\n")
    print("| points in the series | names=train/loss: median ms | without names: median ms | points returned "
          "| response bytes | spike kept |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        one, every = row["one_series"], row["all_series"]
        print(f"| {row['points']:,} | {one['median_ms']:.0f} | {every['median_ms']:.0f} | {one['points_returned']} | "
              f"{one['bytes']:,} | {'yes' if one['spike_kept'] and every['spike_kept'] else 'NO'} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_metrics_query.py",
                                               *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "max_points": 2000, "stages": rows},
        indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
