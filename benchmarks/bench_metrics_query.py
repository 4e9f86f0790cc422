"""`GET /api/jobs/{id}/metrics?max_points=2000` on series of up to 10,000,000 points (issues 2, 12).

An attached run is opened on the real server; its points are written into the server's state folder by
the store's own pyramid code (`pyramid.write` on a second connection, 100k points per transaction: the
ingest path over HTTP has its own benchmark) in stages of 10k, 100k, 1M and 10M points, one series
`train/loss` with one spike per stage. At each stage the endpoint is called `--calls` times:
with `names=train/loss`; without `names` (as the dashboard first asks: every series of the job); zoomed
to 1,001 steps around the stage's spike (raw points expected); zoomed to a tenth of the run (buckets).
The table shows median times, points returned, response size and whether every spike survived.

    .venv/bin/python benchmarks/bench_metrics_query.py [--points 10000000] [--calls 5]
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

from finetune_studio import pyramid
from finetune_studio.client import StudioClient
from finetune_studio.testing import studio_server

HERE = Path(__file__).resolve().parent
NAME = "metrics_query"
CHUNK = 100_000


def spike_value(stage: int) -> float:
    return 50.0 + stage / 1e9  # one per stage, told apart


def add_points(database: Path, job_id: str, first: int, last: int, spike: int, value: float) -> None:
    """Steps first..last of `train/loss`: a noisy decaying curve, with one spike."""
    rng = random.Random(first)
    now = time.time()
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        conn.execute("PRAGMA synchronous=NORMAL")
        for low in range(first, last + 1, CHUNK):
            rows: list[pyramid.Point] = [
                (step, value if step == spike else 2.0 * math.exp(-step / 2_000_000) + 0.1 + rng.random() * 0.05,
                 now + step * 0.01) for step in range(low, min(last, low + CHUNK - 1) + 1)]
            with conn:
                pyramid.write(conn, job_id, {"train/loss": rows})


def query(api: StudioClient, job_id: str, calls: int, spikes: list[float], **params: Any) -> dict[str, Any]:
    params = {"max_points": 2000, **params}
    times, answer = [], None
    for _ in range(calls):
        started = time.perf_counter()
        answer = api.http.get(f"/api/jobs/{job_id}/metrics", params=params)
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    assert answer is not None
    series = answer.json()["series"]["train/loss"]
    return {"params": params, "median_ms": statistics.median(times) * 1000, "times_ms": [t * 1000 for t in times],
            "bytes": len(answer.content), "points_returned": len(series["step"]),
            "spikes_kept": all(v in series["value"] for v in spikes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    stages = [n for n in (10_000, 100_000, 1_000_000) if n < args.points] + [args.points]
    load_before = os.getloadavg()[0]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp, \
            studio_server(Path(tmp) / "state") as api:
        job_id = api.request("POST", "/api/runs", json={"name": "one million points", "task": "custom",
                                                        "output_dir": tmp, "training_args": {}, "pid": None})["id"]
        done, spikes = 0, []
        for stage in stages:
            spike = done + int((stage - done) * 0.77)
            spikes.append(spike_value(stage))
            started = time.perf_counter()
            add_points(Path(tmp) / "state" / "studio.db", job_id, done + 1, stage, spike, spikes[-1])
            insert_seconds = time.perf_counter() - started
            done = stage
            tenth = (spike - stage // 20, spike + stage // 20)
            rows.append({"points": stage, "insert_seconds": insert_seconds, "spike_step": spike,
                         "one_series": query(api, job_id, args.calls, spikes, names="train/loss"),
                         "all_series": query(api, job_id, args.calls, spikes),
                         "zoom_1001_steps": query(api, job_id, args.calls, spikes[-1:], names="train/loss",
                                                  from_step=spike - 500, to_step=spike + 500),
                         "zoom_a_tenth": query(api, job_id, args.calls, spikes[-1:], names="train/loss",
                                               from_step=tenth[0], to_step=tenth[1])})

    print(f"\nGET /api/jobs/{{id}}/metrics?max_points=2000, one series (train/loss), median of {args.calls} calls; "
          "ms (points returned)\n")
    print("| points in the series | names=train/loss | without names | from_step/to_step: 1,001 steps "
          "| a tenth of the run | response bytes | every spike kept |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        parts = [row[k] for k in ("one_series", "all_series", "zoom_1001_steps", "zoom_a_tenth")]
        cells = " | ".join(f"{p['median_ms']:.1f} ({p['points_returned']:,})" for p in parts)
        kept = all(p["spikes_kept"] for p in parts)
        print(f"| {row['points']:,} | {cells} | {parts[0]['bytes']:,} | {'yes' if kept else 'NO'} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_metrics_query.py",
                                               *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_average_1min": [load_before, os.getloadavg()[0]], "max_points": 2000,
        "stages": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
